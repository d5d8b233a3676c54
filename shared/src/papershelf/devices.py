"""Devices, seeding through explicit generators, and a deterministic mode.

torch is optional: these helpers import it on first use and raise
:class:`papershelf.MissingExtraError` naming the ``torch`` extra when it is missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from papershelf._optional import require

if TYPE_CHECKING:
    import torch

ENV_DEVICE = "PAPERSHELF_DEVICE"
_KNOWN = ("cpu", "cuda", "mps")


def _torch() -> Any:
    return require("torch")


def available_devices() -> list[str]:
    """Device types usable here, best first (``cuda``, ``mps``, then ``cpu``)."""
    torch = _torch()
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the device: the argument, else ``$PAPERSHELF_DEVICE``, else cuda > mps > cpu.

    Raises:
        ValueError: the requested device type is unknown or not available on this machine.
    """
    torch = _torch()
    source = "device"
    if device is None:
        device = os.environ.get(ENV_DEVICE) or None
        source = ENV_DEVICE
    if device is None:
        return torch.device(available_devices()[0])  # type: ignore[no-any-return]
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{source}={device!r} is not a device (use one of {_KNOWN})") from exc
    if dev.type not in available_devices():
        raise ValueError(
            f"{source}={device!r} is not available here (available: {available_devices()})"
        )
    return dev  # type: ignore[no-any-return]


def numpy_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy ``Generator`` from a seed (or the generator itself, passed through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (
        not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0
    ):
        raise ValueError(
            f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}"
        )
    return np.random.default_rng(seed)


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device``; pass it to every random torch call."""
    torch = _torch()
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen  # type: ignore[no-any-return]


@contextlib.contextmanager
def deterministic(*, warn_only: bool = False) -> Iterator[None]:
    """Run the block with torch's deterministic algorithms, restoring the previous settings.

    Sets ``torch.use_deterministic_algorithms(True)``, turns off cuDNN benchmarking and sets
    ``CUBLAS_WORKSPACE_CONFIG`` (needed for deterministic cuBLAS) when it is unset.
    """
    torch = _torch()
    prev_alg = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_det = torch.backends.cudnn.deterministic
    prev_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if prev_env is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_alg, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_det
        if prev_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


__all__ = [
    "ENV_DEVICE",
    "available_devices",
    "deterministic",
    "get_device",
    "numpy_rng",
    "torch_generator",
]

"""Which kernel backends exist in this install, and why one is missing.

The compiled module ``abq_kernels._ext`` always holds the C++ CPU kernel; it holds the CUDA kernel
only when nvcc was found at build time. CMake writes ``_build_info.json`` next to it with what was
compiled, why not, the CUDA architectures and the compiler versions. Nothing here swaps a backend
for another: :func:`require_backend` raises with the recorded reason.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from types import ModuleType
from typing import Any

BACKENDS = ("numpy", "torch", "cpu", "cuda")


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here.

    Attributes:
        name: ``"numpy"`` / ``"torch"`` (references), ``"cpu"`` (C++), ``"cuda"`` (tensor cores).
        compiled: the compiled part exists in this install (always true for the references).
        available: it can run now (compiled, and for CUDA a usable sm_80+ device is present).
        reason: why it is unavailable (empty when available).
    """

    name: str
    compiled: bool
    available: bool
    reason: str = ""


@functools.cache
def _load_ext() -> tuple[ModuleType | None, str]:
    try:
        from abq_kernels import _ext
    except ImportError as exc:  # a source checkout without a build
        return None, f"the compiled extension abq_kernels._ext is not importable ({exc})"
    return _ext, ""


def extension() -> ModuleType:
    """The compiled module, or a RuntimeError saying why it is missing."""
    ext, why = _load_ext()
    if ext is None:
        raise RuntimeError(why)
    return ext


@functools.cache
def build_info() -> dict[str, Any]:
    """The build record written by CMake (backends compiled, reasons, architectures, compilers)."""
    try:
        text = resources.files("abq_kernels").joinpath("_build_info.json").read_text("utf-8")
    except (FileNotFoundError, OSError):
        return {"backends": {"cpu": False, "cuda": False}, "cuda_reason": "no build record"}
    info: dict[str, Any] = json.loads(text)
    return info


def _cuda_status() -> BackendStatus:
    ext, why = _load_ext()
    if ext is None:
        return BackendStatus("cuda", False, False, why)
    if not getattr(ext, "HAS_CUDA", False):
        reason = build_info().get("cuda_reason") or "the CUDA kernel was not compiled"
        return BackendStatus("cuda", False, False, f"not compiled: {reason}")
    import torch

    if not torch.cuda.is_available():
        return BackendStatus(
            "cuda", True, False, "compiled, but torch sees no CUDA device (CPU build of torch?)"
        )
    problem = str(ext.cuda_device_check(torch.cuda.current_device()))
    if problem:
        return BackendStatus("cuda", True, False, problem)
    return BackendStatus("cuda", True, True)


def available_backends() -> dict[str, BackendStatus]:
    """Every backend with whether it runs here and, if not, why.

    Example:
        >>> {k: v.available for k, v in available_backends().items()}  # doctest: +SKIP
        {'numpy': True, 'torch': True, 'cpu': True, 'cuda': False}
    """
    ext, why = _load_ext()
    out = {
        "numpy": BackendStatus("numpy", True, True),
        "torch": BackendStatus("torch", True, True),
        "cpu": BackendStatus("cpu", ext is not None, ext is not None, why),
    }
    out["cuda"] = _cuda_status()
    return out


def require_backend(name: str) -> BackendStatus:
    """The status of ``name``; ValueError for an unknown name, RuntimeError when unavailable."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {name!r}")
    status = available_backends()[name]
    if not status.available:
        raise RuntimeError(f"backend {name!r} is unavailable: {status.reason}")
    return status

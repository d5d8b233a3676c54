"""pytest plugin for papershelf packages (load with ``-p papershelf.testing.plugin``).

- Blocks network access: connecting to anything but loopback or a Unix socket raises
  :class:`NetworkBlockedError` (``--allow-network`` turns this off).
- Sets ``HF_HUB_OFFLINE=1`` and pins BLAS/OpenMP threads to one (unless already set), because
  many small linear-algebra calls run far slower with threading on small machines.
- Registers the ``gpu`` marker (skipped with a reason when CUDA is absent) and ``slow``
  (deselected unless ``--run-slow``).
- Fixtures: ``rng`` (a seeded numpy Generator) and ``torch_device`` (cpu, or cuda for gpu tests).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

import numpy as np
import pytest

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _var in _THREAD_VARS:
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class NetworkBlockedError(RuntimeError):
    """A test tried to reach the network; papershelf tests run offline."""


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(sock: socket.socket, address: Any) -> bool:
    if sock.family == getattr(socket, "AF_UNIX", object()):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _is_local(self, address):
        raise NetworkBlockedError(f"network access blocked in tests: connect to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_local(self, address):
        raise NetworkBlockedError(f"network access blocked in tests: connect to {address!r}")
    return _real_connect_ex(self, address)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("papershelf")
    group.addoption("--allow-network", action="store_true", help="do not block network access")
    group.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device (skipped with a reason without one)"
    )
    config.addinivalue_line("markers", "slow: long-running; deselected unless --run-slow")
    if not config.getoption("--allow-network"):
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]


def pytest_unconfigure(config: pytest.Config) -> None:
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow")
    has_cuda: bool | None = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow test: pass --run-slow to run it"))
        if "gpu" in item.keywords:
            if has_cuda is None:
                has_cuda = _cuda_available()
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device; none here"))


@pytest.fixture(autouse=True)
def _pin_torch_threads() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy Generator seeded with 0: pass it on; never use the global numpy RNG."""
    return np.random.default_rng(0)


@pytest.fixture
def torch_device(request: pytest.FixtureRequest) -> Any:
    """``cuda`` for tests marked gpu, else ``cpu``."""
    torch = pytest.importorskip("torch")
    return torch.device("cuda" if request.node.get_closest_marker("gpu") else "cpu")

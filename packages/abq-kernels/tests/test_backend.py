"""Build record and backend report."""

from __future__ import annotations

import subprocess
import sys

import abq_kernels as ak
from abq_kernels._backend import extension


def test_build_info_consistent_with_extension() -> None:
    info = ak.build_info()
    ext = extension()
    assert info["backends"]["cpu"] is True
    assert info["backends"]["cuda"] is bool(ext.HAS_CUDA)
    if info["backends"]["cuda"]:
        assert info["cuda_architectures"] and all(
            int(a[:2]) >= 80 for a in info["cuda_architectures"]
        )
        assert info["cuda_compiler"]
    else:
        assert info["cuda_reason"]
    assert info["cxx_compiler"]


def test_cuda_device_check_returns_text_without_a_device() -> None:
    """The compiled device probe must hand its message back as ``str`` (a missing nanobind
    string caster once made every backend query fail on CUDA machines only)."""
    ext = extension()
    if not ext.HAS_CUDA:
        assert ak.build_info()["cuda_reason"]
        return
    msg = ext.cuda_device_check(0)
    assert isinstance(msg, str)
    assert msg == "" or "CUDA" in msg or "device" in msg


def test_available_backends_report() -> None:
    b = ak.available_backends()
    assert set(b) == {"numpy", "torch", "cpu", "cuda"}
    assert b["cpu"].available and b["numpy"].available and b["torch"].available
    for s in b.values():
        assert s.available or s.reason


def test_import_is_lazy() -> None:
    code = "import sys, abq_kernels; assert 'torch' not in sys.modules and 'abq_kernels._ext' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

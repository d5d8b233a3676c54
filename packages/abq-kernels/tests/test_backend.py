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


def test_available_backends_report() -> None:
    b = ak.available_backends()
    assert set(b) == {"numpy", "torch", "cpu", "cuda"}
    assert b["cpu"].available and b["numpy"].available and b["torch"].available
    for s in b.values():
        assert s.available or s.reason


def test_import_is_lazy() -> None:
    code = "import sys, abq_kernels; assert 'torch' not in sys.modules and 'abq_kernels._ext' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

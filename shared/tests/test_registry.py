from __future__ import annotations

import subprocess
import sys

import pytest

from papershelf import MethodInfo, lazy_exports
from papershelf.registry import available_methods


def _info(**kw: object) -> MethodInfo:
    base = {
        "name": "demo-method",
        "title": "T",
        "authors": ("A",),
        "venue": "V 2024",
        "year": 2024,
        "arxiv": "1234.5678",
        "code_url": "",
        "claim": "c",
        "demo": "mod:fn",
    }
    base.update(kw)
    return MethodInfo(**base)  # type: ignore[arg-type]


def test_method_info_validates_name_and_demo() -> None:
    assert _info().import_name == "demo_method"
    assert _info().paper_url == "https://arxiv.org/abs/1234.5678"
    with pytest.raises(ValueError, match="name"):
        _info(name="Bad_Name")
    with pytest.raises(ValueError, match="module:function"):
        _info(demo="nocolon")
    with pytest.raises(ValueError, match="authors"):
        _info(authors=())


def test_discovery_does_not_import_torch() -> None:
    code = (
        "import sys, papershelf.registry as r; r.available_methods(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_available_methods_is_a_mapping() -> None:
    methods = available_methods(refresh=True)
    for name, info in methods.items():
        assert info.name == name


def test_lazy_exports_resolve_on_first_use() -> None:
    getattr_, dir_ = lazy_exports("papershelf", {"numpy_rng": ".devices"})
    assert getattr_("numpy_rng").__name__ == "numpy_rng"
    assert dir_() == ["numpy_rng"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr_("nope")

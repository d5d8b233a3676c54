"""Every installed method package is discoverable without importing torch, and its demo resolves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from papershelf.registry import available_methods

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent.name for p in ROOT.glob("packages/*/pyproject.toml"))


def test_discovery_lists_every_package_without_importing_heavy_modules() -> None:
    code = (
        "import json, sys\n"
        "from papershelf.registry import available_methods\n"
        "names = sorted(available_methods())\n"
        "heavy = sorted(m for m in ('torch', 'sklearn', 'scipy', 'cvxpy', 'safetensors') if m in sys.modules)\n"
        "print(json.dumps({'names': names, 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["names"] == PACKAGES
    assert found["heavy"] == [], f"discovery imported {found['heavy']}"


@pytest.mark.parametrize("name", PACKAGES)
def test_method_record_is_complete_and_demo_resolves(name: str) -> None:
    info = available_methods()[name]
    assert info.name == name and info.arxiv and info.claim and info.venue
    assert callable(info.load_demo())

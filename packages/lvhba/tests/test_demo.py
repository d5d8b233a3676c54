"""The demo runs and shows the effect."""

from __future__ import annotations

from pathlib import Path

from lvhba.demo import run


def test_demo_quick(tmp_path: Path) -> None:
    result = run(quick=True, out_dir=tmp_path)
    # LV-HBA's cost grows far slower with n than the exact baseline's (n³ linear solve)
    assert result.method_value * 3 < result.baseline_value
    assert result.holds
    assert all(p.is_file() and p.suffix == ".png" for p in result.figures)

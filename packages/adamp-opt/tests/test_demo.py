# mypy: disable-error-code="no-untyped-call,index,call-overload,arg-type,misc,operator"
"""The demo shows the paper's mechanism with a margin one seed cannot flip."""

from __future__ import annotations

from pathlib import Path

from adamp_opt.demo import run


def test_quick_demo_shows_the_mechanism(tmp_path: Path) -> None:
    result = run(quick=True, seed=0, out_dir=tmp_path)
    assert result.holds, result.table
    growth, step = result.details["norm_growth"], result.details["late_effective_step"]
    assert growth["AdamP"] * 2 < growth["Adam"]  # measured 1.29 vs 3.16
    assert growth["SGDP"] * 1.5 < growth["SGD"]  # measured 2.15 vs 4.45
    assert step["AdamP"] > 2 * step["Adam"] and step["SGDP"] > 2 * step["SGD"]
    assert result.method_value == growth["AdamP"] and result.baseline_value == growth["Adam"]
    assert [r["optimizer"] for r in result.table] == ["Adam", "AdamP", "SGD", "SGDP"]
    assert all(f.is_file() and f.suffix == ".png" for f in result.figures) and result.figures

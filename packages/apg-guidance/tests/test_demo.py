"""The demo runs and shows the effect with a margin seeds cannot flip."""

from __future__ import annotations

from pathlib import Path

from apg_guidance.demo import run


def test_quick_demo(tmp_path: Path) -> None:
    result = run(quick=True, seed=0, out_dir=tmp_path)
    assert result.holds
    assert result.method_value < result.baseline_value - 0.05
    rows = {(r["setting"], r["method"], r["w"]): r for r in result.table}
    assert (
        rows[("mixture64", "APG", 15.0)]["oversaturation"]
        < 0.5 * rows[("mixture64", "CFG", 15.0)]["oversaturation"]
    )
    assert rows[("ring", "CFG", 7.0)]["norm_ratio"] > 1.3 > rows[("ring", "APG", 7.0)]["norm_ratio"]
    assert (
        all(p.is_file() and p.suffix == ".png" for p in result.figures) and len(result.figures) == 3
    )

"""The demo: Lion lands on the box-constrained optimum; AdamW with the same λ does not."""

from __future__ import annotations

from pathlib import Path

from lion_opt.demo import run


def test_quick_demo_shows_the_effect(tmp_path: Path) -> None:
    result = run(quick=True, seed=0, out_dir=tmp_path)
    assert result.holds
    # Margins far beyond seed noise: Lion within 5% of the box radius, AdamW 10× further away.
    assert result.method_value < 0.05
    assert result.baseline_value > 10 * result.method_value
    assert result.details["lion_max_constraint"] <= 1 + 1e-9
    assert result.details["adamw_max_constraint"] > 1.01
    assert result.details["reference_kkt_residual"] < 1e-5
    assert all(f.is_file() and f.suffix == ".png" for f in result.figures)
    assert {row["optimizer"] for row in result.table} >= {"Lion (sign)", "AdamW", "Lion-𝒦 l2"}

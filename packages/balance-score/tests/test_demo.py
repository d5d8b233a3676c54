"""The demo runs and shows the paper's effect with margins seeds cannot flip."""

from __future__ import annotations

from pathlib import Path

from balance_score.demo import run, simulate


def test_simulation_effect_signs() -> None:
    rows = simulate(betas=((2.0, 2.0),), sizes=(100, 3000), reps=40, seed=1, smooth_reps=0)
    by = {(r["model"], r["n"]): r for r in rows}
    cal = by[("calibrated", 100)]
    assert abs(cal["Balance"]) < 0.03  # sd/sqrt(40) ~ 0.008
    assert cal["ECE10"] > 0.07  # binned ECE of a calibrated model: ~0.10 at n = 100
    assert by[("calibrated", 3000)]["ECE10"] < cal["ECE10"] / 2
    assert by[("over-confident", 3000)]["Balance"] < -0.08
    assert by[("under-confident", 3000)]["Balance"] > 0.06
    over = by[("over-confident", 3000)]
    assert abs(abs(over["Balance"]) - over["TCE"]) < 0.01
    noisy = by[("noisy", 3000)]
    assert abs(noisy["Balance"]) < noisy["TCE"] - 0.02  # the cancellation limitation


def test_quick_demo_holds(tmp_path: Path) -> None:
    result = run(quick=True, seed=0, out_dir=tmp_path)
    assert result.holds
    assert result.method_value < 0.02 < 0.06 < result.baseline_value
    assert result.details["breast_cancer_direction"] is True
    assert all(f.exists() and f.suffix == ".png" for f in result.figures)

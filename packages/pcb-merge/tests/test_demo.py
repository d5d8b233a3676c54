"""The demo runs and shows the effect's sign with a margin seeds cannot flip."""

from __future__ import annotations

from pathlib import Path

from pcb_merge.demo import mechanism_experiment, run


def test_mechanism_pcb_beats_task_arithmetic_across_seeds() -> None:
    for seed in (0, 1, 2):
        res = mechanism_experiment(seed, d=8_000)
        closed = res["closed"]
        assert closed["PCB (global, r=0.1)"] > closed["task arithmetic"] + 0.04
        assert closed["TIES (global, k=20%)"] > closed["task arithmetic"]


def test_quick_demo(tmp_path: Path) -> None:
    res = run(quick=True, seed=0, out_dir=tmp_path)
    assert res.holds and res.method_value > res.baseline_value + 0.04
    assert all(p.is_file() for p in res.figures)
    norm = res.details["digits_normalized_acc"]
    # every merge sits between the shared init and the individual models (normalised acc <= ~1)
    assert all(
        res.details["digits_pretrained_normalized_acc"] - 0.05 < v <= 1.02 for v in norm.values()
    )
    assert norm["task arithmetic"] > res.details["digits_pretrained_normalized_acc"]

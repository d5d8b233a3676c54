from __future__ import annotations

from pathlib import Path

from abq_kernels.demo import run


def test_demo_quick(tmp_path: Path) -> None:
    res = run(quick=True, seed=0, out_dir=tmp_path)
    assert res.holds
    # bit balance at 2 bits: clearly lower perplexity than 4-level 2-bit weights
    assert res.method_value < 0.95 * res.baseline_value
    fp = res.details["fp_ppl"]
    w8 = next(r["ppl"] for r in res.table if r["config"] == "W8A8" and r["method"] == "RTN")
    assert abs(w8 - fp) < 0.02 * fp
    assert all(p.exists() for p in res.figures)

"""The demo runs quickly and shows the paper's effect with a margin seeds cannot flip."""

from __future__ import annotations

from pathlib import Path

from monna._method import METHOD
from monna.demo import ATTACKS, RULES, run


def test_demo_quick(tmp_path: Path) -> None:
    res = run(quick=True, seed=0, out_dir=tmp_path)
    assert len(res.table) == len(ATTACKS) * len(RULES)
    clean = res.details["attack_free_dsgd"]
    assert clean > 0.85
    # MoNNA within 5 points of attack-free D-SGD under every attack; averaging far below it
    assert res.method_value > clean - 0.05
    assert res.baseline_value < 0.5
    assert res.holds
    assert all(p.is_file() and p.suffix == ".png" for p in res.figures) and len(res.figures) == 2
    assert METHOD.load_demo() is run

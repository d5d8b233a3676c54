"""Time to relative error 1e-3 on the normalised toy: LV-HBA against the implicit-gradient
baseline (exact cvxpy lower level + KKT solve), single-threaded, float64. The ratio
t_baseline / t_LV-HBA is printed and stored in extra_info; n = 3000 runs with --run-slow."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from lvhba import LVHBA, ImplicitGradient
from lvhba.examples.toy import normalized_toy, toy_start

TOL = 1e-3
FAST = {"alpha": 2e-2, "beta": 1e-2, "eta": 1e-1}


def _lvhba_time(n: int) -> tuple[float, int]:
    inst = normalized_toy(n)
    x0, y0 = toy_start(n)
    below = [0]

    def stay_below(state: Any, _: Any) -> bool:
        # LV-HBA's error is not monotone: count the time until it stays below TOL for 50 steps
        below[0] = below[0] + 1 if inst.relative_error(state.x) <= TOL else 0
        return below[0] >= 50

    start = time.perf_counter()
    res = LVHBA(**FAST).solve(
        inst.problem,
        x0,
        y0,
        max_iter=20_000,
        record_violation=False,
        callback=stay_below,
    )
    return time.perf_counter() - start, res.n_iter


def _baseline_time(n: int) -> tuple[float, int]:
    inst = normalized_toy(n)
    # warm-up, not timed: cvxpy's compile step and torch.func's first-use initialisation
    ImplicitGradient().hypergradient(inst.problem, inst.oracle, torch.zeros(n, dtype=torch.float64))
    start = time.perf_counter()
    res = ImplicitGradient(lr=0.1).solve(
        inst.problem,
        inst.oracle,
        torch.zeros(n, dtype=torch.float64),
        max_iter=200,
        callback=lambda x, _: inst.relative_error(x) <= TOL,
    )
    return time.perf_counter() - start, res.n_iter


@pytest.mark.parametrize("n", [100, 300, 1000, pytest.param(3000, marks=pytest.mark.slow)])
def test_time_to_tolerance(benchmark: Any, n: int) -> None:
    torch.set_num_threads(1)
    t_base, it_base = _baseline_time(n)
    t_lv, it_lv = benchmark.pedantic(_lvhba_time, args=(n,), rounds=1, iterations=1)
    ratio = t_base / t_lv
    benchmark.extra_info.update(
        {
            "n": n,
            "threads": torch.get_num_threads(),
            "t_lvhba": t_lv,
            "it_lvhba": it_lv,
            "t_baseline": t_base,
            "it_baseline": it_base,
            "ratio_baseline_over_lvhba": ratio,
        }
    )
    print(
        f"\nn={n}: LV-HBA {t_lv:.2f}s ({it_lv} it), implicit gradient {t_base:.2f}s ({it_base} it), "
        f"ratio {ratio:.2f} (threads=1)"
    )

"""Coefficient search for merged models: a grid over a shared λ, or an evolutionary search over
per-task λ_i (CMA-ES through ``cma``, or nevergrad's ``NGOpt`` as in the official ``pcb_ES.py``).

The objective takes the list of λ_i and returns a score to **maximise**, computed on a
*validation* split. (The official NLP ES code searches on the test split; do not.) Pair it with
:class:`pcb_merge.PCB` so each evaluation only re-weights precomputed scores::

    scores = PCB(ratio=0.1, scope="global").fit(base, models)
    result = evolutionary_search(lambda lam: val_acc(scores.merge(lam)), n=len(models),
                                 bounds=(0.8, 1.3), budget=100, seed=0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from papershelf._optional import require

__all__ = ["SearchResult", "evolutionary_search", "grid_search"]

Objective = Callable[[list[float]], float]


@dataclass
class SearchResult:
    """Best coefficients found, their score, and every evaluation ``(lambdas, score)`` in order."""

    lambdas: list[float]
    score: float
    history: list[tuple[list[float], float]] = field(default_factory=list)


def _evaluate(
    objective: Objective, lam: list[float], history: list[tuple[list[float], float]]
) -> float:
    score = float(objective(list(lam)))
    if math.isnan(score):
        raise ValueError(f"objective returned NaN for lambdas={lam}")
    history.append((list(lam), score))
    return score


def grid_search(objective: Objective, n: int, grid: Sequence[float]) -> SearchResult:
    """Try one shared λ from ``grid`` for all ``n`` tasks (the official fixed-λ protocol).

    Ties go to the earliest grid value.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    values = [float(g) for g in grid]
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(
            f"grid must be a non-empty sequence of positive finite numbers, got {grid!r}"
        )
    history: list[tuple[list[float], float]] = []
    best: tuple[list[float], float] | None = None
    for v in values:
        lam = [v] * n
        s = _evaluate(objective, lam, history)
        if best is None or s > best[1]:
            best = (lam, s)
    assert best is not None
    return SearchResult(best[0], best[1], history)


def evolutionary_search(
    objective: Objective,
    n: int,
    *,
    bounds: tuple[float, float] = (0.8, 1.3),
    budget: int = 100,
    init: float | Sequence[float] = 1.0,
    optimizer: str = "cma",
    seed: int = 0,
    sigma: float | None = None,
) -> SearchResult:
    """Per-task λ_i by a derivative-free optimizer within ``bounds``, at most ``budget`` evaluations.

    Args:
        objective: λ list -> validation score to maximise.
        n: number of tasks.
        bounds: ``(lower, upper)`` for every λ_i, ``0 < lower < upper`` (official: 0.8, 1.3).
        budget: evaluations (official: 100 for ViT, 200 for NLP).
        init: starting point (official: 1.0).
        optimizer: ``"cma"`` (CMA-ES, the ``cma`` package) or ``"nevergrad"`` (``NGOpt``, the
            official choice; extra ``pcb-merge[nevergrad]``).
        seed: seeds the optimizer.
        sigma: CMA-ES initial step (default: a quarter of the bound width).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"bounds must satisfy 0 < lower < upper, got {bounds!r}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    x0 = [float(init)] * n if isinstance(init, (int, float)) else [float(v) for v in init]
    if len(x0) != n or any(not lo <= v <= hi for v in x0):
        raise ValueError(f"init must be {n} value(s) inside bounds {bounds!r}, got {init!r}")
    history: list[tuple[list[float], float]] = []
    if optimizer == "cma":
        import cma

        opts: dict[str, Any] = {
            "bounds": [lo, hi],
            "seed": seed + 1,
            "verbose": -9,
            "maxfevals": budget,
        }
        if n == 1:  # cma needs dimension >= 2: optimise a duplicated coordinate
            x0 = x0 * 2
        es = cma.CMAEvolutionStrategy(x0, sigma or (hi - lo) / 4, opts)
        while not es.stop() and len(history) < budget:
            xs = es.ask()
            xs = xs[: budget - len(history)]
            scores = [-_evaluate(objective, [float(v) for v in x[:n]], history) for x in xs]
            if len(xs) < es.popsize:
                break
            es.tell(xs, scores)
    elif optimizer == "nevergrad":
        ng = require("nevergrad", extra="nevergrad", package="pcb-merge")
        param = ng.p.Array(init=x0, lower=[lo] * n, upper=[hi] * n)
        param.random_state.seed(seed)
        opt = ng.optimizers.NGOpt(parametrization=param, budget=budget)
        opt.minimize(lambda x: -_evaluate(objective, [float(v) for v in x], history))
    else:
        raise ValueError(f"optimizer must be 'cma' or 'nevergrad', got {optimizer!r}")
    best = max(history, key=lambda h: h[1])
    return SearchResult(best[0], best[1], history)

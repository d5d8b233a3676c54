"""Every bad input raises a clear error naming the argument."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest
import torch
from lvhba import (
    LVHBA,
    BilevelProblem,
    CvxpyLowerLevel,
    ImplicitGradient,
    InfeasibleError,
    LowerLevelProgram,
    NonFiniteIterateError,
    ValueFunctionPenalty,
)
from lvhba.examples.toy import normalized_toy, toy_start


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be a positive"),
        ({"beta": -1.0}, "beta must be a positive"),
        ({"eta": math.nan}, "eta must be a positive"),
        ({"gamma1": 0}, "gamma1 must be a positive"),
        ({"gamma2": -2}, "gamma2 must be a positive"),
        ({"c0": 0.0}, "c0 must be a positive"),
        ({"p": 0.5}, r"p must satisfy 0 < p < 1/2"),
        ({"p": 0.7}, r"p must satisfy 0 < p < 1/2"),
        ({"p": 0.0}, "p must be a positive"),
        ({"multiplier_bound": 0.0}, "multiplier_bound must be a positive"),
        ({"eta_lambda": -1e-3}, "eta_lambda must be a positive"),
        ({"alpha": "0.1"}, "alpha must be a positive"),
    ],
)
def test_bad_hyperparameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LVHBA(**kwargs)  # type: ignore[arg-type]


def test_bad_problem_callables() -> None:
    with pytest.raises(TypeError, match="F must be callable"):
        BilevelProblem(F=1.0, f=lambda x, t: t.sum())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="g must be callable or None"):
        BilevelProblem(F=lambda x, y: y.sum(), f=lambda x, t: t.sum(), g="no")  # type: ignore[arg-type]


def test_bad_start_points() -> None:
    inst = normalized_toy(3)
    x0, y0 = toy_start(3)
    s = LVHBA()
    with pytest.raises(ValueError, match="y0 must be finite"):
        s.solve(inst.problem, x0, torch.full((6,), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x0 must be a non-empty 1-D tensor, got shape \(3, 1\)"):
        s.solve(inst.problem, x0.reshape(3, 1), y0)
    with pytest.raises(TypeError, match=r"x0 must be a torch\.Tensor"):
        s.solve(inst.problem, np.zeros(3), y0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="y0 must have x0's dtype"):
        s.solve(inst.problem, x0, y0.float())
    with pytest.raises(ValueError, match=r"theta0 must have the shape of y0 \(6,\)"):
        s.solve(inst.problem, x0, y0, theta0=torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"lam0 must have shape \(1,\)"):
        s.solve(inst.problem, x0, y0, lam0=torch.zeros(2))
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        s.solve(inst.problem, torch.zeros(3, dtype=torch.int64), y0)


def test_shape_mismatch_inside_callables() -> None:
    inst = normalized_toy(3)
    with pytest.raises(RuntimeError):  # torch's own shape error from F when y is too short
        LVHBA().solve(
            inst.problem, torch.zeros(3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        )
    bad_g = BilevelProblem(
        F=lambda x, y: y.sum(), f=lambda x, t: (t**2).sum(), g=lambda x, t: t.sum()
    )
    with pytest.raises(ValueError, match=r"g\(x, theta\) must return a 1-D tensor, got \(\)"):
        LVHBA().solve(
            bad_g, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        )
    bad_F = BilevelProblem(F=lambda x, y: y, f=lambda x, t: (t**2).sum())
    with pytest.raises(ValueError, match=r"F\(x0, y0\) must return a scalar tensor"):
        LVHBA().solve(
            bad_F, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        )
    bad_proj = BilevelProblem(
        F=lambda x, y: y.sum(), f=lambda x, t: (t**2).sum(), project_xy=lambda x, y: (x, y[:1])
    )
    with pytest.raises(ValueError, match="project_xy changed the shapes"):
        LVHBA().solve(
            bad_proj, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        )


def test_bad_solve_arguments() -> None:
    inst = normalized_toy(3)
    x0, y0 = toy_start(3)
    with pytest.raises(ValueError, match="max_iter must be a positive int, got 0"):
        LVHBA().solve(inst.problem, x0, y0, max_iter=0)
    with pytest.raises(ValueError, match="tol must be a non-negative number, got -1"):
        LVHBA().solve(inst.problem, x0, y0, tol=-1)
    with pytest.raises(TypeError, match="callback must be callable"):
        LVHBA().solve(inst.problem, x0, y0, callback=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="problem must be a BilevelProblem"):
        LVHBA().solve("toy", x0, y0)  # type: ignore[arg-type]


def test_divergence_stops_with_iteration_number() -> None:
    inst = normalized_toy(3)
    x0, y0 = toy_start(3)
    with pytest.raises(NonFiniteIterateError, match=r"non-finite .* at iteration \d+") as err:
        LVHBA(alpha=50.0, eta=50.0, beta=50.0).solve(inst.problem, x0, y0, max_iter=500)
    assert err.value.iteration >= 1
    assert len(err.value.result.history) == err.value.iteration - 1
    assert bool(torch.isfinite(err.value.result.x).all())


def _disk_oracle() -> CvxpyLowerLevel:
    cp: Any = importlib.import_module("cvxpy")

    # θ ≥ 1 and θ ≤ x: infeasible when x < 1
    def build(xp, th):  # type: ignore[no-untyped-def]
        return LowerLevelProgram(objective=cp.sum_squares(th), g=cp.hstack([1 - th, th - xp]))

    return CvxpyLowerLevel(1, 1, build)


def test_infeasible_lower_level_reports_cvxpy_status() -> None:
    oracle = _disk_oracle()
    assert oracle.solve(np.array([2.0])).theta == pytest.approx([1.0], abs=1e-6)
    with pytest.raises(
        InfeasibleError, match="lower-level problem is infeasible \\(cvxpy status 'infeasible'\\)"
    ):
        oracle.solve(np.array([0.0]))


def test_oracle_argument_errors() -> None:
    cp: Any = importlib.import_module("cvxpy")

    oracle = _disk_oracle()
    with pytest.raises(ValueError, match=r"x must have 1 entries"):
        oracle.solve(np.zeros(2))
    with pytest.raises(ValueError, match="n_theta must be a positive int"):
        CvxpyLowerLevel(1, 0, lambda p, t: LowerLevelProgram(cp.sum(t)))
    with pytest.raises(ValueError, match="solver must be one of the installed cvxpy solvers"):
        CvxpyLowerLevel(1, 1, lambda p, t: LowerLevelProgram(cp.sum_squares(t)), solver="NOPE")
    with pytest.raises(ValueError, match="DPP"):
        CvxpyLowerLevel(1, 1, lambda p, t: LowerLevelProgram(cp.sum_squares(t) * cp.exp(p[0])))
    with pytest.raises(TypeError, match="build must return a LowerLevelProgram"):
        CvxpyLowerLevel(1, 1, lambda p, t: cp.sum_squares(t))


def test_infeasible_projection_set() -> None:

    from lvhba import CvxpySet

    proj = CvxpySet(1, 1, lambda vx, vy: [vx >= 1, vx <= 0])
    with pytest.raises(InfeasibleError, match="projection onto C is infeasible"):
        proj(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))


def test_baseline_argument_errors() -> None:
    inst = normalized_toy(3)
    x0, y0 = toy_start(3)
    with pytest.raises(ValueError, match="lr must be a positive"):
        ImplicitGradient(lr=0.0)
    with pytest.raises(ValueError, match=r"p must satisfy 0 < p < 1/2"):
        ValueFunctionPenalty(p=0.5)
    with pytest.raises(TypeError, match="oracle must be a CvxpyLowerLevel"):
        ImplicitGradient().solve(inst.problem, None, x0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_iter must be a positive int"):
        ValueFunctionPenalty().solve(inst.problem, inst.oracle, x0, y0, max_iter=-3)

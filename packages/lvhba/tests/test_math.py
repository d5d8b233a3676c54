"""Convergence to the known solution, constraint satisfaction (checked with cvxpy), and the
equations of the step."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest
import torch
from lvhba import (
    LVHBA,
    AffineSet,
    BilevelProblem,
    BoxSet,
    CvxpySet,
    lower_level_gap,
    lvhba_step,
    penalty,
)
from lvhba.examples.toy import llc_toy, normalized_toy, toy_start

FAST = {"alpha": 2e-2, "beta": 1e-2, "eta": 1e-1}


def test_converges_to_known_solution() -> None:
    inst = normalized_toy(10)
    x0, y0 = toy_start(10)
    res = LVHBA(**FAST).solve(inst.problem, x0, y0, max_iter=1800)
    assert res.status == "max_iter"
    assert inst.relative_error(res.x) <= 1e-4
    assert (
        float(torch.linalg.vector_norm(res.y - inst.y_star) / torch.linalg.vector_norm(inst.y_star))
        <= 1e-4
    )
    assert res.lam.item() == pytest.approx(inst.mu_star, rel=1e-4)
    assert not bool(res.multiplier_at_bound.any())
    # the lower-level constraint holds and y is lower-level optimal, checked by cvxpy
    assert inst.problem.violation(res.x, res.y) <= 1e-10
    sol = inst.oracle.solve(res.x)
    assert sol.status == "optimal"
    assert abs(lower_level_gap(inst.problem.f, inst.oracle, res.x, res.y)) <= 1e-5
    assert sol.mu[0] == pytest.approx(inst.mu_star, rel=1e-4)
    # history: one entry per iteration, gap estimate and F settle
    assert len(res.history) == 1800
    assert abs(res.history.gap[-1]) < 1e-6
    assert res.history.F[-1] == pytest.approx(
        float(inst.problem.F(inst.x_star, inst.y_star)), abs=1e-3
    )


@pytest.mark.slow
def test_converges_with_default_settings() -> None:
    inst = normalized_toy(10)
    x0, y0 = toy_start(10)
    res = LVHBA().solve(inst.problem, x0, y0, max_iter=20_000, record_violation=False)
    assert inst.relative_error(res.x) <= 1e-5


def test_iteration_count_independent_of_n() -> None:
    """The normalised toy's trajectory of relative errors does not depend on n."""
    errs = []
    for n in (5, 40):
        inst = normalized_toy(n)
        res = LVHBA(**FAST).solve(inst.problem, *toy_start(n), max_iter=300, record_violation=False)
        errs.append(inst.relative_error(res.x))
    assert errs[0] == pytest.approx(errs[1], rel=1e-8)


def test_tol_stops_with_converged_status() -> None:
    inst = normalized_toy(3)
    res = LVHBA(**FAST).solve(inst.problem, *toy_start(3), max_iter=5000, tol=1e-6)
    assert res.status == "converged"
    assert res.n_iter < 5000
    assert "tol" in res.message


def test_callback_stops() -> None:
    inst = normalized_toy(5)
    seen: list[int] = []

    def cb(state, info):  # type: ignore[no-untyped-def]
        seen.append(state.k)
        return state.k == 7

    res = LVHBA().solve(inst.problem, *toy_start(5), max_iter=100, callback=cb)
    assert res.status == "callback" and res.n_iter == 7 and seen == list(range(1, 8))


def test_step_equations_by_hand() -> None:
    """One step on a 1-D problem with hand-computed gradients."""
    prob = BilevelProblem(
        F=lambda x, y: (x**2).sum() + ((y - 1) ** 2).sum(),
        f=lambda x, t: 0.5 * ((t - x) ** 2).sum(),
        g=lambda x, t: t - 2 * x,  # θ ≤ 2x
    )
    x, y, th = (
        torch.tensor([0.5], dtype=torch.float64),
        torch.tensor([0.3], dtype=torch.float64),
        torch.tensor([0.1], dtype=torch.float64),
    )
    lam, z = torch.tensor([0.4], dtype=torch.float64), torch.tensor([0.2], dtype=torch.float64)
    solver = LVHBA(
        alpha=0.1, beta=0.2, eta=0.3, gamma1=2.0, gamma2=4.0, c0=1.5, p=0.25, multiplier_bound=10.0
    )
    state = solver.init(prob, x, y, theta0=th, lam0=lam, z0=z)
    new, info = solver.step(prob, state)
    ck = 1.5
    d_th = (0.1 - 0.5) + 0.4 + (0.1 - 0.3) / 2.0
    th1 = 0.1 - 0.3 * d_th
    d_l = -(0.1 - 1.0) + (0.4 - 0.2) / 4.0
    l1 = min(max(0.4 - 0.3 * d_l, 0.0), 10.0)
    d_x = 2 * 0.5 / ck + (-(0.3 - 0.5)) - (-(th1 - 0.5)) - l1 * (-2.0)
    d_y = 2 * (0.3 - 1) / ck + (0.3 - 0.5) - (0.3 - th1) / 2.0
    d_z = -(l1 - 0.2) / 4.0
    assert new.theta.item() == pytest.approx(th1, abs=1e-15)
    assert new.lam.item() == pytest.approx(l1, abs=1e-15)
    assert new.x.item() == pytest.approx(0.5 - 0.1 * d_x, abs=1e-15)
    assert new.y.item() == pytest.approx(0.3 - 0.1 * d_y, abs=1e-15)
    assert new.z.item() == pytest.approx(0.2 - 0.2 * d_z, abs=1e-15)
    assert pytest.approx(0.25 + 0.49) == info.F
    assert info.c_k == ck
    v_hat = (
        0.5 * (th1 - 0.5) ** 2 + l1 * (th1 - 1.0) + (th1 - 0.3) ** 2 / 4.0 - (l1 - 0.2) ** 2 / 8.0
    )
    assert info.gap == pytest.approx(0.5 * 0.2**2 - v_hat, abs=1e-14)
    # inputs untouched
    assert x.item() == 0.5 and lam.item() == 0.4


def test_inequality_multipliers_stay_in_box() -> None:
    prob = BilevelProblem(
        F=lambda x, y: ((y + 5) ** 2).sum(),
        f=lambda x, t: 0.5 * ((t - x) ** 2).sum(),
        g=lambda x, t: -t - 1.0,
    )  # θ ≥ -1
    solver = LVHBA(multiplier_bound=0.5)
    state = solver.init(
        prob,
        torch.zeros(3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
        lam0=5.0,
        z0=-3.0,
    )
    assert float(state.lam.max()) == 0.5 and float(state.z.min()) == 0.0
    for _ in range(50):
        state, _ = solver.step(prob, state)
        assert float(state.lam.min()) >= 0.0 and float(state.lam.max()) <= 0.5
        assert float(state.z.min()) >= 0.0 and float(state.z.max()) <= 0.5


def test_penalty_schedule() -> None:
    assert penalty(0, 2.0, 0.3) == 2.0
    assert penalty(9, 1.0, 0.25) == pytest.approx(10**0.25)


def test_functional_step_matches_solver_step() -> None:
    inst = llc_toy(4)
    solver = LVHBA()
    state = solver.init(inst.problem, *toy_start(4))
    a, _ = solver.step(inst.problem, state)
    lo = torch.tensor([-solver.multiplier_bound], dtype=torch.float64)
    b, _ = lvhba_step(
        inst.problem,
        state,
        alpha=solver.alpha,
        beta=solver.beta,
        eta=solver.eta,
        eta_lambda=solver.eta,
        gamma1=solver.gamma1,
        gamma2=solver.gamma2,
        c_k=1.0,
        lam_lower=lo,
        lam_upper=-lo,
    )
    for t, u in zip((a.x, a.y, a.theta, a.lam, a.z), (b.x, b.y, b.theta, b.lam, b.z)):
        assert torch.equal(t, u)


def test_affine_set_projection_is_orthogonal_and_idempotent(rng: np.random.Generator) -> None:
    A = torch.as_tensor(rng.standard_normal((2, 7)))
    b = torch.as_tensor(rng.standard_normal(2))
    proj = AffineSet(A, b, 3)
    x, y = torch.as_tensor(rng.standard_normal(3)), torch.as_tensor(rng.standard_normal(4))
    px, py = proj(x, y)
    v = torch.cat([px, py])
    assert torch.allclose(A @ v, b, atol=1e-12)
    qx, qy = proj(px, py)
    assert torch.allclose(qx, px, atol=1e-12) and torch.allclose(qy, py, atol=1e-12)
    # the step is orthogonal to the set: it lies in the row space of A
    step = torch.cat([x, y]) - v
    resid = step - A.T @ torch.linalg.lstsq(A.T, step.unsqueeze(1)).solution.squeeze(1)
    assert float(resid.abs().max()) < 1e-12


def test_cvxpy_set_matches_closed_form(rng: np.random.Generator) -> None:
    cp: Any = importlib.import_module("cvxpy")

    x, y = torch.as_tensor(rng.standard_normal(3)), torch.as_tensor(rng.standard_normal(4))
    exact = AffineSet.sum_zero(3, 4)(x, y)
    via_cvx = CvxpySet(3, 4, lambda vx, vy: [cp.sum(vx) + cp.sum(vy) == 0])(x, y)
    for a, b in zip(exact, via_cvx):
        assert torch.allclose(a, b, atol=1e-7)
    bx, by = BoxSet(0.0, 1.0, None, 0.0)(x, y)
    assert float(bx.min()) >= 0 and float(bx.max()) <= 1 and float(by.max()) <= 0


def test_oracle_multiplier_sign_convention() -> None:
    """cvxpy's duals follow L = f + λᵀg + μᵀh, matching LV-HBA's multipliers."""
    inst = normalized_toy(6)
    sol = inst.oracle.solve(torch.ones(6, dtype=torch.float64))
    assert sol.mu[0] == pytest.approx(-math.sqrt(18), rel=1e-6)
    assert np.allclose(sol.theta[:6], 2.0, atol=1e-6)

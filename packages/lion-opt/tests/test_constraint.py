"""Lion-𝒦 solves min f(x) + (1/λ)𝒦*(λx): box invariance for Lion, and every member reaching the
solution of an independent reference solver on a least-squares problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lion_opt import Lion, constraint_violation, get_kappa, lion_step
from scipy.optimize import lsq_linear, minimize

N, D, LAM = 200, 20, 1.0


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    """Least squares whose unconstrained optimum lies far outside the box |x| ≤ 1/λ = 1."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((N, D))
    x_true = rng.uniform(-4, 4, D)
    return A, A @ x_true + 0.1 * rng.standard_normal(N)


def _lion(A: np.ndarray, b: np.ndarray, kappa: str, steps: int = 3000) -> tuple[np.ndarray, float]:
    """Full-batch Lion-𝒦 on f(x) = ‖Ax − b‖²/(2n), cosine lr 2e-2 → 1e-4; returns x and max λ|x|."""
    At, bt = torch.as_tensor(A), torch.as_tensor(b)
    x = torch.zeros(D, dtype=torch.float64, requires_grad=True)
    opt = Lion([x], lr=2e-2, weight_decay=LAM, kappa=kappa)
    worst = 0.0
    for t in range(steps):
        opt.param_groups[0]["lr"] = 1e-4 + (2e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * t / steps))
        x.grad = At.T @ (At @ x.detach() - bt) / N
        opt.step()
        worst = max(worst, constraint_violation(opt)[0])
    return x.detach().numpy(), worst


def _ridge(A: np.ndarray, b: np.ndarray, mu: float) -> np.ndarray:
    return np.asarray(np.linalg.solve(A.T @ A / N + mu * np.eye(D), A.T @ b / N))


def _reference(A: np.ndarray, b: np.ndarray, kappa: str) -> np.ndarray:
    r = 1 / LAM
    As, bs = A / math.sqrt(N), b / math.sqrt(N)
    if kappa == "sign":  # min f  s.t. |x| ≤ 1/λ
        return np.asarray(lsq_linear(As, bs, bounds=(-r, r), tol=1e-14, method="bvls").x)
    if kappa.startswith("clip"):  # min f + (δλ/2)‖x‖²  s.t. |x| ≤ 1/λ
        delta = get_kappa(kappa).delta  # type: ignore[attr-defined]
        Aa = np.vstack([As, math.sqrt(delta * LAM) * np.eye(D)])
        sol = lsq_linear(
            Aa, np.concatenate([bs, np.zeros(D)]), bounds=(-r, r), tol=1e-14, method="bvls"
        )
        return np.asarray(sol.x)
    if kappa == "identity":  # closed-form ridge, μ = λ
        return _ridge(A, b, LAM)
    if kappa == "l2":  # ‖x‖₂ ≤ 1/λ: ridge with the multiplier that puts x on the sphere (bisection)
        lo, hi = 0.0, 1e6
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.linalg.norm(_ridge(A, b, mid)) > r else (lo, mid)
        return _ridge(A, b, hi)
    if kappa.startswith("deadzone"):  # min f + e‖x‖₁ s.t. |x| ≤ 1/λ, as x = u − v, u, v ∈ [0, r]
        e = get_kappa(kappa).e  # type: ignore[attr-defined]

        def l1_fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            x = z[:D] - z[D:]
            res = A @ x - b
            g = A.T @ res / N
            return 0.5 * res @ res / N + e * z.sum(), np.concatenate([g + e, -g + e])

        out = minimize(l1_fun, np.zeros(2 * D), jac=True, method="L-BFGS-B", bounds=[(0, r)] * (2 * D),
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000})  # fmt: skip
        return np.asarray(out.x[:D] - out.x[D:])
    if kappa.startswith("tanh"):  # f + (1/(λβ))Σ[λx artanh(λx) + ½log(1 − λ²x²)]
        beta = get_kappa(kappa).beta  # type: ignore[attr-defined]

        def barrier_fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            res = A @ x - b
            y = LAM * x
            pen = (y * np.arctanh(y) + 0.5 * np.log1p(-y * y)).sum() / (LAM * beta)
            return 0.5 * res @ res / N + pen, A.T @ res / N + np.arctanh(y) / beta

        edge = r * (1 - 1e-12)
        out = minimize(barrier_fun, np.zeros(D), jac=True, method="L-BFGS-B", bounds=[(-edge, edge)] * D,
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000})  # fmt: skip
        return np.asarray(out.x)
    raise AssertionError(kappa)


@pytest.mark.parametrize(
    ("kappa", "tol"),
    [
        ("sign", 2e-3),
        ("clip(2.0)", 1e-3),
        ("deadzone(1.0)", 2e-3),
        ("identity", 1e-6),
        ("l2", 1e-3),
        ("tanh(1.0)", 1e-3),
    ],
)
def test_each_member_reaches_its_reference_solution(
    problem: tuple[np.ndarray, np.ndarray], kappa: str, tol: float
) -> None:
    A, b = problem
    x, worst = _lion(A, b, kappa)
    ref = _reference(A, b, kappa)
    assert np.abs(x - ref).max() <= tol
    k = get_kappa(kappa)
    if k.bounded:
        assert worst <= 1 + 1e-12  # started at 0, inside: never left the constraint set
    if kappa == "sign":
        assert np.sum(np.abs(ref) >= 1 / LAM - 1e-9) >= D // 3, (
            "the box must be active for this test to mean anything"
        )
    if kappa.startswith(
        "deadzone"
    ):  # sparsity: the reference's exact zeros are (near) zero in Lion
        zeros = np.abs(ref) < 1e-8
        assert zeros.sum() >= 2
        assert np.abs(x[zeros]).max() <= tol


lrs = st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(
    lrs=lrs, lam=st.floats(0.1, 10.0), seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e3)
)
def test_box_is_invariant_and_entered_geometrically(
    lrs: list[float], lam: float, seed: int, scale: float
) -> None:
    """For any gradients and any schedule with lr·λ ≤ 1: inside the box stays inside; outside,
    the excess max|x| − 1/λ shrinks at least by (1 − lr·λ) every step."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, generator=gen, dtype=torch.float64) * (3 / lam)  # starts partly outside
    m = torch.zeros_like(x)
    excess = float(x.abs().max()) - 1 / lam
    for frac in lrs:
        lr = frac / lam  # lr·λ = frac ≤ 1
        g = torch.randn(64, generator=gen, dtype=torch.float64) * scale
        lion_step([x], [g], [m], lr=lr, weight_decay=lam)
        new_excess = float(x.abs().max()) - 1 / lam
        if excess <= 0:
            assert new_excess <= 1e-12 / lam
        else:
            assert new_excess <= (1 - lr * lam) * excess + 1e-12 / lam
        excess = new_excess


def test_box_holds_in_float32_over_many_steps() -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.zeros(4096, requires_grad=True)
    opt = Lion([p], lr=1e-2, weight_decay=4.0)
    for _ in range(2000):
        p.grad = torch.randn(4096, generator=gen) + 0.5
        opt.step()
        assert constraint_violation(opt)[0] <= 1.0 + 1e-6

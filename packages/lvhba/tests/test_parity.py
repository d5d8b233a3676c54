"""Parity: the torch/autograd LV-HBA against an independent numpy reference of the update
(closed-form gradients, written from the equations), over 300 steps."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from lvhba import LVHBA
from lvhba.examples.toy import llc_toy, normalized_toy

from papershelf.testing import assert_trajectory_close


def _reference(
    n: int,
    *,
    kind: str,
    alpha: float,
    beta: float,
    eta: float,
    gamma1: float,
    gamma2: float,
    c0: float,
    p: float,
    r: float,
    x: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    lam: float,
    z: float,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, float, float]]:
    """Yield (x, y, θ, λ, z) after each step; equality multiplier in [-r, r]."""
    s = 1.0 / math.sqrt(3 * n) if kind == "normalized" else 1.0
    one = np.ones(n)
    k = 0
    while True:
        ck = c0 * (k + 1) ** p
        # closed-form gradients of F, f, h for the two toys
        t1 = theta[:n]
        d_theta = np.concatenate([t1 - x, one]) + lam * s + (theta - y) / gamma1
        d_lam = -(x.sum() + theta.sum()) * s + (lam - z) / gamma2
        theta = theta - eta * d_theta
        lam = min(max(lam - eta * d_lam, -r), r)
        y1, y2 = y[:n], y[n:]
        if kind == "normalized":
            Fx, Fy = y1 - 2.0, np.concatenate([x - 1.0, 2 * (y2 + 3.0)])
        else:
            Fx, Fy = x - y2, np.concatenate([y1 - 1.0, -(x - y2)])
        fx_y, fx_t = -y1, -theta[:n]
        fy = np.concatenate([y1 - x, one])
        d_x = Fx / ck + fx_y - fx_t - lam * s * one
        d_y = Fy / ck + fy - (y - theta) / gamma1
        w = np.concatenate([x - alpha * d_x, y - alpha * d_y])
        w = w - w.mean()
        x, y = w[:n], w[n:]
        z = min(max(z + beta * (lam - z) / gamma2, -r), r)
        k += 1
        yield x, y, theta, lam, z


def _run_parity(
    kind: str,
    n: int,
    settings: dict[str, float],
    x0: np.ndarray,
    y0: np.ndarray,
    theta0: np.ndarray,
    lam0: float,
    z0: float,
) -> None:
    inst = normalized_toy(n) if kind == "normalized" else llc_toy(n)
    solver = LVHBA(**settings)
    state = solver.init(
        inst.problem,
        torch.as_tensor(x0),
        torch.as_tensor(y0),
        theta0=torch.as_tensor(theta0),
        lam0=lam0,
        z0=z0,
    )
    ref = _reference(
        n,
        kind=kind,
        alpha=settings["alpha"],
        beta=settings["beta"],
        eta=settings["eta"],
        gamma1=settings["gamma1"],
        gamma2=settings["gamma2"],
        c0=settings["c0"],
        p=settings["p"],
        r=settings["multiplier_bound"],
        x=x0,
        y=y0,
        theta=theta0,
        lam=lam0,
        z=z0,
    )
    scale = [1.0]

    def step_a(_: int) -> list[torch.Tensor]:
        nonlocal state
        state, _info = solver.step(inst.problem, state)
        out = [state.x, state.y, state.theta, state.lam, state.z]
        scale[0] = max(scale[0], *(float(t.abs().max()) for t in out))
        return [t / scale[0] for t in out]

    def step_b(_: int) -> list[np.ndarray]:
        x, y, th, lam, z = next(ref)
        return [a / scale[0] for a in (x, y, th, np.array([lam]), np.array([z]))]

    # every entry agrees to 1e-10 relative to the trajectory's largest magnitude
    assert_trajectory_close(step_a, step_b, 300, atol=1e-10)


def test_parity_normalized_toy_bicgaffa_settings() -> None:
    n = 20
    settings = {
        "alpha": 5e-3,
        "beta": 2e-3,
        "eta": 3e-2,
        "gamma1": 10.0,
        "gamma2": 1.0,
        "c0": 1.0,
        "p": 0.3,
        "multiplier_bound": 1000.0,
    }
    rng = np.random.default_rng(0)
    x0, y0 = rng.standard_normal(n), rng.standard_normal(2 * n)
    shift = (x0.sum() + y0.sum()) / (3 * n)
    x0, y0 = x0 - shift, y0 - shift  # start inside C
    _run_parity("normalized", n, settings, x0, y0, rng.standard_normal(2 * n), -1.0, -1.0)


def test_parity_official_llc_toy_and_settings() -> None:
    """The official LLC script's committed settings and initialisation (n = 100)."""
    n = 100
    settings = {
        "alpha": 0.008,
        "beta": 0.02,
        "eta": 0.01,
        "gamma1": 10.0,
        "gamma2": 10.0,
        "c0": 0.025,
        "p": 0.3,
        "multiplier_bound": 1000.0,
    }
    x0 = np.full(n, -20.0)  # 10·1 after the script's sum projection
    y0 = np.full(2 * n, 10.0)
    theta0 = np.full(2 * n, 10.0)
    _run_parity("llc", n, settings, x0, y0, theta0, 1.0, -1.0)

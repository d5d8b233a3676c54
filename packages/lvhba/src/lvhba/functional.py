"""One LV-HBA iteration as a pure function (Yao, Yu, Zeng & Zhang, ICLR 2024, Algorithm 1).

LV-HBA is a penalty method on the proximal Lagrangian value-function reformulation

.. math::

    v_\\gamma(x, y, z) = \\min_{\\theta \\in Y} \\max_{\\lambda \\in \\Lambda}
        f(x, \\theta) + \\lambda^\\top c(x, \\theta) + \\frac{\\|\\theta - y\\|^2}{2\\gamma_1}
        - \\frac{\\|\\lambda - z\\|^2}{2\\gamma_2},
    \\qquad c = (g, h),

    \\min_{(x, y) \\in C,\\ z \\in Z}\\ \\frac{F(x, y)}{c_k} + f(x, y) - v_\\gamma(x, y, z),
    \\qquad c_k = \\underline{c}\\,(k + 1)^p,\\ 0 < p < 1/2,

where :math:`\\Lambda = Z = [0, r]^l \\times [-r, r]^m` (multipliers of ``g`` are non-negative,
those of the equalities ``h`` are free in sign, and both are truncated at ``r``). Iteration ``k``:

.. math::

    d_\\theta &= \\nabla_\\theta f(x_k, \\theta_k) + \\nabla_\\theta c(x_k, \\theta_k)^\\top\\lambda_k
               + (\\theta_k - y_k)/\\gamma_1, \\\\
    d_\\lambda &= -c(x_k, \\theta_k) + (\\lambda_k - z_k)/\\gamma_2, \\\\
    \\theta_{k+1} &= \\mathrm{Proj}_Y(\\theta_k - \\eta\\, d_\\theta), \\quad
    \\lambda_{k+1} = \\mathrm{Proj}_\\Lambda(\\lambda_k - \\eta_\\lambda d_\\lambda), \\\\
    d_x &= \\nabla_x F(x_k, y_k)/c_k + \\nabla_x f(x_k, y_k) - \\nabla_x f(x_k, \\theta_{k+1})
           - \\nabla_x c(x_k, \\theta_{k+1})^\\top \\lambda_{k+1}, \\\\
    d_y &= \\nabla_y F(x_k, y_k)/c_k + \\nabla_y f(x_k, y_k) - (y_k - \\theta_{k+1})/\\gamma_1, \\\\
    d_z &= -(\\lambda_{k+1} - z_k)/\\gamma_2, \\\\
    (x_{k+1}, y_{k+1}) &= \\mathrm{Proj}_C\\big((x_k, y_k) - \\alpha (d_x, d_y)\\big), \\quad
    z_{k+1} = \\mathrm{Proj}_Z(z_k - \\beta d_z).

Only gradients and vector-Jacobian products appear: no Hessian and no lower-level solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lvhba.problem import BilevelProblem


@dataclass(frozen=True)
class LVHBAState:
    """The iterate :math:`(x_k, y_k, \\theta_k, \\lambda_k, z_k)` and the counter ``k``.

    ``lam`` and ``z`` hold the multipliers of ``g`` first (``n_ineq`` of them), then those
    of ``h``.
    """

    x: Tensor
    y: Tensor
    theta: Tensor
    lam: Tensor
    z: Tensor
    k: int = 0
    n_ineq: int = 0


@dataclass(frozen=True)
class StepInfo:
    """Quantities at iterate ``k`` computed during the step (no extra function calls).

    Attributes:
        F: :math:`F(x_k, y_k)`.
        f: :math:`f(x_k, y_k)`.
        gap: :math:`f(x_k, y_k) - \\hat v_k`, with :math:`\\hat v_k` the proximal Lagrangian at
            :math:`(x_k, y_k, z_k; \\theta_{k+1}, \\lambda_{k+1})`, an estimate of
            :math:`v_\\gamma(x_k, y_k, z_k)`; it tends to 0 as ``y`` becomes lower-level optimal.
        c_k: the penalty parameter used.
    """

    F: float
    f: float
    gap: float
    c_k: float


def penalty(k: int, c0: float, p: float) -> float:
    """The penalty schedule :math:`c_k = \\underline{c}\\,(k + 1)^p`."""
    return float(c0 * (k + 1) ** p)


def _grad(out: Tensor, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    grads = torch.autograd.grad(out, inputs, allow_unused=True)
    return tuple(torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads))


def lvhba_step(
    problem: BilevelProblem,
    state: LVHBAState,
    *,
    alpha: float,
    beta: float,
    eta: float,
    eta_lambda: float,
    gamma1: float,
    gamma2: float,
    c_k: float,
    lam_lower: Tensor,
    lam_upper: Tensor,
) -> tuple[LVHBAState, StepInfo]:
    """One LV-HBA iteration (see the module docstring); returns the new state and
    :class:`StepInfo` about the old one. Inputs are never modified."""
    x, y, theta, lam, z = (
        state.x.detach(),
        state.y.detach(),
        state.theta.detach(),
        state.lam,
        state.z,
    )

    # 1. one projected gradient descent-ascent step on the proximal min-max, at (x_k, y_k, z_k)
    th = theta.clone().requires_grad_(True)
    cons = problem.constraints(x, th)
    inner = problem.f(x, th) + (cons @ lam if cons.numel() else 0.0)
    (g_theta,) = _grad(inner, (th,))
    d_theta = g_theta + (theta - y) / gamma1
    d_lam = -cons.detach() + (lam - z) / gamma2
    theta_new = problem.project_lower(x, theta - eta * d_theta).detach()
    lam_new = torch.clamp(lam - eta_lambda * d_lam, lam_lower, lam_upper)

    # 2. one projected gradient step on (x, y, z) with the new (θ, λ) and the old (x, y)
    xr = x.clone().requires_grad_(True)
    yr = y.clone().requires_grad_(True)
    F_val = problem.F(xr, yr)
    f_val = problem.f(xr, yr)
    cons_new = problem.constraints(xr, theta_new)
    lagr = problem.f(xr, theta_new) + (cons_new @ lam_new if cons_new.numel() else 0.0)
    phi = F_val / c_k + f_val - lagr
    d_x, g_y = _grad(phi, (xr, yr))
    d_y = g_y - (y - theta_new) / gamma1
    d_z = -(lam_new - z) / gamma2
    x_new, y_new = problem.project(x - alpha * d_x, y - alpha * d_y)
    z_new = torch.clamp(z - beta * d_z, lam_lower, lam_upper)

    with torch.no_grad():
        v_hat = (
            float(lagr.detach())
            + float(torch.sum((theta_new - y) ** 2)) / (2 * gamma1)
            - float(torch.sum((lam_new - z) ** 2)) / (2 * gamma2)
        )
    F_num, f_num = float(F_val.detach()), float(f_val.detach())
    info = StepInfo(F=F_num, f=f_num, gap=f_num - v_hat, c_k=c_k)
    new = LVHBAState(
        x=x_new.detach(),
        y=y_new.detach(),
        theta=theta_new,
        lam=lam_new,
        z=z_new,
        k=state.k + 1,
        n_ineq=state.n_ineq,
    )
    return new, info


__all__ = ["LVHBAState", "StepInfo", "lvhba_step", "penalty"]

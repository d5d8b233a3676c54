"""Baselines that solve the lower level exactly (with cvxpy) at every iteration.

- :class:`ImplicitGradient` (GAM-like; Xu & Zhu, AAAI 2023): solve the lower level, keep the
  active constraints, differentiate the KKT system

  .. math::

      \\begin{bmatrix} \\nabla^2_{\\theta\\theta} L & \\nabla_\\theta c_A^\\top \\\\
      \\nabla_\\theta c_A & 0 \\end{bmatrix}
      \\begin{bmatrix} \\partial\\theta^* / \\partial x \\\\ \\partial\\lambda_A / \\partial x \\end{bmatrix}
      = -\\begin{bmatrix} \\nabla^2_{\\theta x} L \\\\ \\nabla_x c_A \\end{bmatrix}

  (least squares, minimum norm when singular) and take the gradient step
  :math:`x \\leftarrow \\mathrm{Proj}_X(x - \\text{lr}\\,(\\nabla_x F + (\\partial\\theta^*/\\partial x)^\\top
  \\nabla_y F))` at :math:`y = \\theta^*(x)`. Each iteration costs a lower-level solve, two
  Hessian blocks and an :math:`O((n_\\theta + |A|)^3)` linear solve.
- :class:`ValueFunctionPenalty`: the value-function penalty method *without* the proximal
  Lagrangian: projected gradient steps on :math:`F/c_k + f(x, y) - v(x)` over ``C``, with
  :math:`\\nabla v(x) = \\nabla_x f(x, \\theta^*) + \\nabla_x c(x, \\theta^*)^\\top \\lambda^*` from an
  exact lower-level solve every iteration (instead of LV-HBA's single proximal GDA step).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.func import jacfwd, jacrev

from lvhba.functional import penalty
from lvhba.oracle import CvxpyLowerLevel
from lvhba.problem import BilevelProblem
from lvhba.solver import (
    History,
    NonFiniteIterateError,
    _check_run_options,
    _positive,
    _rel_step,
    _vector_arg,
)

Status = Literal["converged", "max_iter", "callback"]


@dataclass
class BaselineResult:
    """Solution and history of a baseline run (``history.gap`` is the exact
    :math:`f(x, y) - v(x)`; ``residual_lower`` is unused and holds zeros)."""

    x: Tensor
    y: Tensor
    n_iter: int
    status: Status
    message: str
    history: History


def _check_common(
    problem: object, oracle: object, max_iter: object, tol: object, callback: object
) -> None:
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"problem must be a BilevelProblem, got {type(problem).__name__}")
    if not isinstance(oracle, CvxpyLowerLevel):
        raise TypeError(f"oracle must be a CvxpyLowerLevel, got {type(oracle).__name__}")
    _check_run_options(max_iter, tol, callback)


def _stop(stopped: bool, tol: float, step: float, k: int) -> tuple[Status, str] | None:
    """Why a baseline's loop ends after iteration ``k`` (0-based), or ``None`` to go on."""
    if stopped:
        return "callback", f"the callback stopped the run at iteration {k + 1}"
    if tol > 0 and step <= tol:
        return "converged", f"relative step {step:.2e} fell below tol={tol:g} at iteration {k + 1}"
    return None


class ImplicitGradient:
    """Exact lower level + implicit (KKT) hypergradient descent on ``x``.

    Args:
        lr: step size on ``x``.
        active_tol: an inequality is active when its multiplier exceeds this.
        project_x: projection onto ``X`` (default: none).
    """

    def __init__(
        self,
        lr: float = 0.1,
        active_tol: float = 1e-6,
        project_x: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.lr = _positive("lr", lr)
        self.active_tol = _positive("active_tol", active_tol)
        if project_x is not None and not callable(project_x):
            raise TypeError(f"project_x must be callable or None, got {project_x!r}")
        self.project_x = project_x

    def hypergradient(
        self, problem: BilevelProblem, oracle: CvxpyLowerLevel, x: Tensor
    ) -> tuple[Tensor, Tensor, float, float]:
        """``(dF/dx, θ*(x), F(x, θ*), v(x))`` at ``x``."""
        sol = oracle.solve(x)
        theta = torch.as_tensor(sol.theta, dtype=x.dtype, device=x.device)
        mult = torch.as_tensor(sol.multipliers(), dtype=x.dtype, device=x.device)
        n_g = sol.lam.size
        active = torch.ones(mult.numel(), dtype=torch.bool)
        active[:n_g] = mult[:n_g].cpu() > self.active_tol
        idx = torch.nonzero(active).flatten().to(x.device)
        mult_a = mult[idx]

        def lagrangian(xv: Tensor, tv: Tensor) -> Tensor:
            c = problem.constraints(xv, tv)
            return problem.f(xv, tv) + (c[idx] @ mult_a if idx.numel() else 0.0)

        def cons_a(xv: Tensor, tv: Tensor) -> Tensor:
            return problem.constraints(xv, tv)[idx]

        with warnings.catch_warnings():
            # torch.func's forward mode scripts a helper on first use, and torch >= 2.10 warns
            # that torch.jit.script is deprecated: not something users of this class can act on
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning
            )
            h_tt = jacfwd(jacrev(lagrangian, argnums=1), argnums=1)(x, theta)
            h_tx = jacfwd(jacrev(lagrangian, argnums=1), argnums=0)(x, theta)
        n_t, n_a = theta.numel(), int(idx.numel())
        if n_a:
            j_t = jacrev(cons_a, argnums=1)(x, theta)
            j_x = jacrev(cons_a, argnums=0)(x, theta)
            kkt = torch.cat(
                [torch.cat([h_tt, j_t.T], 1), torch.cat([j_t, j_t.new_zeros(n_a, n_a)], 1)], 0
            )
            rhs = -torch.cat([h_tx, j_x], 0)
        else:
            kkt, rhs = h_tt, -h_tx
        dtheta = torch.linalg.lstsq(kkt, rhs).solution[:n_t]  # (n_θ, n_x)
        xr = x.clone().requires_grad_(True)
        yr = theta.clone().requires_grad_(True)
        F_val = problem.F(xr, yr)
        gx, gy = torch.autograd.grad(F_val, (xr, yr), allow_unused=True)
        gx = torch.zeros_like(x) if gx is None else gx
        gy = torch.zeros_like(theta) if gy is None else gy
        return gx + dtheta.T @ gy, theta, float(F_val.detach()), sol.value

    def solve(
        self,
        problem: BilevelProblem,
        oracle: CvxpyLowerLevel,
        x0: Tensor,
        max_iter: int = 100,
        tol: float = 0.0,
        callback: Callable[[Tensor, Tensor], bool | None] | None = None,
    ) -> BaselineResult:
        """Hypergradient descent from ``x0``; ``callback(x, y)`` after each step may return
        ``True`` to stop. Stops when the relative step of ``x`` is ≤ ``tol``."""
        _check_common(problem, oracle, max_iter, tol, callback)
        x = _vector_arg("x0", x0)
        if self.project_x is not None:
            x = self.project_x(x)
        history = History()
        start = time.perf_counter()
        status: Status = "max_iter"
        message = f"reached max_iter={max_iter}"
        theta = x.new_zeros(oracle.n_theta)
        for k in range(max_iter):
            grad, theta, F_val, _ = self.hypergradient(problem, oracle, x)
            new = x - self.lr * grad
            if self.project_x is not None:
                new = self.project_x(new)
            if not bool(torch.isfinite(new).all()):
                res = BaselineResult(x, theta, k, "max_iter", "", history)
                raise NonFiniteIterateError(
                    f"implicit-gradient baseline produced a non-finite x at iteration {k + 1} (reduce lr)",
                    k + 1,
                    res,
                )
            step = _rel_step((x, x.new_zeros(0)), (new, new.new_zeros(0)))
            history.F.append(F_val)
            history.gap.append(0.0)
            history.violation.append(problem.violation(x, theta))
            history.residual.append(step)
            history.residual_lower.append(0.0)
            history.c_k.append(math.inf)
            history.time.append(time.perf_counter() - start)
            x = new
            end = _stop(callback is not None and bool(callback(x, theta)), tol, step, k)
            if end is not None:
                status, message = end
                break
        theta = torch.as_tensor(oracle.solve(x).theta, dtype=x.dtype, device=x.device)
        return BaselineResult(x, theta, len(history), status, message, history)


class ValueFunctionPenalty:
    """Value-function penalty method with an exact lower-level solve per iteration.

    Args:
        alpha: step size on ``(x, y)``.
        c0, p: penalty schedule :math:`c_k = c_0 (k+1)^p`.
    """

    def __init__(self, alpha: float = 5e-3, c0: float = 1.0, p: float = 0.3) -> None:
        self.alpha = _positive("alpha", alpha)
        self.c0 = _positive("c0", c0)
        self.p = _positive("p", p)
        if self.p >= 0.5:
            raise ValueError(f"p must satisfy 0 < p < 1/2, got {p!r}")

    def solve(
        self,
        problem: BilevelProblem,
        oracle: CvxpyLowerLevel,
        x0: Tensor,
        y0: Tensor,
        max_iter: int = 1000,
        tol: float = 0.0,
        callback: Callable[[Tensor, Tensor], bool | None] | None = None,
    ) -> BaselineResult:
        """Projected gradient descent on the value-function penalty from ``(x0, y0)``."""
        _check_common(problem, oracle, max_iter, tol, callback)
        x = _vector_arg("x0", x0)
        y = _vector_arg("y0", y0, like=x)
        x, y = problem.project(x, y)
        history = History()
        start = time.perf_counter()
        status: Status = "max_iter"
        message = f"reached max_iter={max_iter}"
        for k in range(max_iter):
            c_k = penalty(k, self.c0, self.p)
            sol = oracle.solve(x)
            theta = torch.as_tensor(sol.theta, dtype=x.dtype, device=x.device)
            mult = torch.as_tensor(sol.multipliers(), dtype=x.dtype, device=x.device)
            xr = x.clone().requires_grad_(True)
            yr = y.clone().requires_grad_(True)
            F_val, f_val = problem.F(xr, yr), problem.f(xr, yr)
            cons = problem.constraints(xr, theta)
            lagr = problem.f(xr, theta) + (cons @ mult if cons.numel() else 0.0)
            gx, gy = torch.autograd.grad(F_val / c_k + f_val - lagr, (xr, yr), allow_unused=True)
            gx = torch.zeros_like(x) if gx is None else gx
            gy = torch.zeros_like(y) if gy is None else gy
            nx, ny = problem.project((x - self.alpha * gx).detach(), (y - self.alpha * gy).detach())
            if not (bool(torch.isfinite(nx).all()) and bool(torch.isfinite(ny).all())):
                res = BaselineResult(x, y, k, "max_iter", "", history)
                raise NonFiniteIterateError(
                    f"value-function penalty produced a non-finite iterate at iteration {k + 1}",
                    k + 1,
                    res,
                )
            step = _rel_step((x, y), (nx, ny))
            history.F.append(float(F_val.detach()))
            history.gap.append(float(f_val.detach()) - sol.value)
            history.violation.append(problem.violation(x, y))
            history.residual.append(step)
            history.residual_lower.append(0.0)
            history.c_k.append(c_k)
            history.time.append(time.perf_counter() - start)
            x, y = nx, ny
            end = _stop(callback is not None and bool(callback(x, y)), tol, step, k)
            if end is not None:
                status, message = end
                break
        return BaselineResult(x, y, len(history), status, message, history)


__all__ = ["BaselineResult", "ImplicitGradient", "ValueFunctionPenalty"]

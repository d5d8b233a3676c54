"""Toy bilevel problems with a coupled equality constraint and a known solution.

**Normalised toy** (the authors' BiC-GAFFA ``Toy_LVHBA`` problem with the coupling constraint
divided by :math:`\\sqrt{3n}`), ``x ∈ R^n``, ``y = (y_1, y_2) ∈ R^{2n}``:

.. math::

    F(x, y) = (y_1 - 2)^\\top (x - 1) + \\|y_2 + 3\\|^2, \\qquad
    f(x, \\theta) = \\tfrac12 \\|\\theta_1\\|^2 - x^\\top \\theta_1 + 1^\\top \\theta_2,

    h(x, \\theta) = (1^\\top x + 1^\\top \\theta) / \\sqrt{3n} = 0 .

The lower level is linear in :math:`\\theta_2`, so it is not strongly convex and has many
solutions. The solution is :math:`x^* = 1, y_1^* = 2, y_2^* = -3` with multiplier
:math:`\\mu^* = -\\sqrt{3n}`; ``C`` is :math:`\\{1^\\top x + 1^\\top y = 0\\}`, whose projection
is mean-centring.

**LLC toy** (the official ``Toy-example/LLC`` problem):
:math:`F = \\tfrac12\\|x - y_2\\|^2 + \\tfrac12\\|y_1 - 1\\|^2`, the same ``f`` and the constraint
:math:`1^\\top x + 1^\\top \\theta = 0` (unnormalised, as in the official script). Solution
:math:`x^* = -0.3, y_1^* = 0.7, y_2^* = -0.4`, :math:`\\mu^* = -1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lvhba.oracle import CvxpyLowerLevel, LowerLevelProgram
from lvhba.problem import BilevelProblem
from lvhba.sets import AffineSet


@dataclass(frozen=True)
class ToyInstance:
    """A toy problem together with its exact oracle and known solution."""

    problem: BilevelProblem
    oracle: CvxpyLowerLevel
    x_star: Tensor
    y_star: Tensor
    mu_star: float
    n: int

    def relative_error(self, x: Tensor) -> float:
        """:math:`\\|x - x^*\\| / \\|x^*\\|`."""
        return float(
            torch.linalg.vector_norm(x - self.x_star) / torch.linalg.vector_norm(self.x_star)
        )


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return n


def _lower(x: Tensor, theta: Tensor) -> Tensor:
    n = x.numel()
    t1, t2 = theta[:n], theta[n:]
    return 0.5 * t1 @ t1 - x @ t1 + t2.sum()


def normalized_toy(
    n: int = 100, *, dtype: torch.dtype = torch.float64, solver: str | None = None
) -> ToyInstance:
    """The normalised known-solution toy (see the module docstring) at size ``n``."""
    n = _check_n(n)
    scale = 1.0 / math.sqrt(3 * n)

    def F(x: Tensor, y: Tensor) -> Tensor:
        return (y[:n] - 2.0) @ (x - 1.0) + torch.sum((y[n:] + 3.0) ** 2)

    def h(x: Tensor, theta: Tensor) -> Tensor:
        return ((x.sum() + theta.sum()) * scale).reshape(1)

    def build(xp: Any, th: Any) -> LowerLevelProgram:
        from lvhba._cvx import cvxpy

        cp = cvxpy()

        obj = 0.5 * cp.sum_squares(th[:n]) - xp @ th[:n] + cp.sum(th[n:])
        return LowerLevelProgram(objective=obj, h=(cp.sum(xp) + cp.sum(th)) * scale)

    problem = BilevelProblem(
        F=F, f=_lower, h=h, project_xy=AffineSet.sum_zero(n, 2 * n, dtype=dtype)
    )
    oracle = CvxpyLowerLevel(n, 2 * n, build, solver=solver)
    x_star = torch.ones(n, dtype=dtype)
    y_star = torch.cat([torch.full((n,), 2.0, dtype=dtype), torch.full((n,), -3.0, dtype=dtype)])
    return ToyInstance(problem, oracle, x_star, y_star, -math.sqrt(3 * n), n)


def llc_toy(
    n: int = 100, *, dtype: torch.dtype = torch.float64, solver: str | None = None
) -> ToyInstance:
    """The official lower-level-convex toy (unnormalised coupling constraint) at size ``n``."""
    n = _check_n(n)

    def F(x: Tensor, y: Tensor) -> Tensor:
        return 0.5 * torch.sum((x - y[n:]) ** 2) + 0.5 * torch.sum((y[:n] - 1.0) ** 2)

    def h(x: Tensor, theta: Tensor) -> Tensor:
        return (x.sum() + theta.sum()).reshape(1)

    def build(xp: Any, th: Any) -> LowerLevelProgram:
        from lvhba._cvx import cvxpy

        cp = cvxpy()

        obj = 0.5 * cp.sum_squares(th[:n]) - xp @ th[:n] + cp.sum(th[n:])
        return LowerLevelProgram(objective=obj, h=cp.sum(xp) + cp.sum(th))

    problem = BilevelProblem(
        F=F, f=_lower, h=h, project_xy=AffineSet.sum_zero(n, 2 * n, dtype=dtype)
    )
    oracle = CvxpyLowerLevel(n, 2 * n, build, solver=solver)
    x_star = torch.full((n,), -0.3, dtype=dtype)
    y_star = torch.cat([torch.full((n,), 0.7, dtype=dtype), torch.full((n,), -0.4, dtype=dtype)])
    return ToyInstance(problem, oracle, x_star, y_star, -1.0, n)


def toy_start(n: int, *, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """The BiC-GAFFA starting point ``x0 = 0``, ``y0 = 0`` (already in ``C``)."""
    return torch.zeros(n, dtype=dtype), torch.zeros(2 * n, dtype=dtype)


__all__ = ["ToyInstance", "llc_toy", "normalized_toy", "toy_start"]

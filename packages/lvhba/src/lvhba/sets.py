"""Projections onto the coupled feasible set ``C`` of ``(x, y)``.

Each class is a callable ``(x, y) -> (x, y)`` usable as ``BilevelProblem.project_xy``. They
never modify their inputs.

- :class:`AffineSet`: :math:`\\{(x, y) : A [x; y] = b\\}` in closed form,
  :math:`v - A^\\top (A A^\\top)^{-1} (A v - b)` with the factorisation done once.
- :class:`BoxSet`: componentwise bounds.
- :class:`CvxpySet`: any convex set described by cvxpy constraints; the projection QP is built
  once with parameters and re-solved for each point (the official SVM scripts' approach).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lvhba._cvx import as_numpy, cvxpy, pick_solver, solve_checked


def _split(v: Tensor, n_x: int) -> tuple[Tensor, Tensor]:
    return v[:n_x], v[n_x:]


class AffineSet:
    """Projection onto :math:`\\{(x, y) : A [x; y] = b\\}` (``A`` of full row rank).

    Args:
        A: matrix of shape ``(k, n_x + n_y)``.
        b: vector of shape ``(k,)`` (default zeros).
        n_x: size of ``x`` (the first ``n_x`` columns of ``A``).
    """

    def __init__(self, A: Tensor, b: Tensor | None, n_x: int) -> None:
        if not isinstance(A, Tensor) or A.ndim != 2:
            raise ValueError(
                f"A must be a 2-D tensor, got {type(A).__name__} of shape {getattr(A, 'shape', None)}"
            )
        if isinstance(n_x, bool) or not isinstance(n_x, int) or not 0 < n_x < A.shape[1]:
            raise ValueError(f"n_x must be an int in (0, {A.shape[1]}), got {n_x!r}")
        self.A = A.detach().clone()
        self.b = A.new_zeros(A.shape[0]) if b is None else b.detach().clone().to(A)
        if self.b.shape != (A.shape[0],):
            raise ValueError(f"b must have shape ({A.shape[0]},), got {tuple(self.b.shape)}")
        gram = self.A @ self.A.T
        try:
            self._chol = torch.linalg.cholesky(gram)
        except RuntimeError as exc:
            raise ValueError("A must have full row rank (A Aᵀ is singular)") from exc
        self.n_x = n_x

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        v = torch.cat([x, y])
        r = (self.A.to(v) @ v - self.b.to(v)).unsqueeze(1)
        w = torch.cholesky_solve(r, self._chol.to(v)).squeeze(1)
        return _split(v - self.A.to(v).T @ w, self.n_x)

    @classmethod
    def sum_zero(cls, n_x: int, n_y: int, *, dtype: torch.dtype = torch.float64) -> AffineSet:
        """:math:`\\{(x, y) : 1^\\top x + 1^\\top y = 0\\}` (projection = mean-centring)."""
        return cls(torch.ones(1, n_x + n_y, dtype=dtype), None, n_x)


class BoxSet:
    """Projection onto :math:`\\{(x, y): l_x \\le x \\le u_x,\\ l_y \\le y \\le u_y\\}`; a bound of
    ``None`` means unbounded."""

    def __init__(
        self,
        x_lower: float | Tensor | None = None,
        x_upper: float | Tensor | None = None,
        y_lower: float | Tensor | None = None,
        y_upper: float | Tensor | None = None,
    ) -> None:
        for lo_name, lo, hi_name, hi in (
            ("x_lower", x_lower, "x_upper", x_upper),
            ("y_lower", y_lower, "y_upper", y_upper),
        ):
            if (
                lo is not None
                and hi is not None
                and bool(torch.any(torch.as_tensor(lo) > torch.as_tensor(hi)))
            ):
                raise ValueError(f"{lo_name} must not exceed {hi_name}, got {lo!r} > {hi!r}")
        self.bounds = (x_lower, x_upper, y_lower, y_upper)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        xl, xu, yl, yu = (None if b is None else torch.as_tensor(b).to(x) for b in self.bounds)
        return torch.clamp(x, xl, xu), torch.clamp(y, yl, yu)


class CvxpySet:
    """Projection onto a convex set given by cvxpy constraints on ``(x, y)``.

    Args:
        n_x, n_y: sizes of ``x`` and ``y``.
        build: ``build(x_var, y_var) -> list of cvxpy constraints``; called once.
        solver: cvxpy solver (default: the first installed of CLARABEL, OSQP, ECOS, SCS).
        solver_options: keyword arguments passed to ``Problem.solve``.

    Raises (on call):
        lvhba.InfeasibleError: the set is empty (cvxpy's status says so).
    """

    def __init__(
        self,
        n_x: int,
        n_y: int,
        build: Callable[[Any, Any], Sequence[Any]],
        *,
        solver: str | None = None,
        solver_options: dict[str, Any] | None = None,
    ) -> None:
        cp = cvxpy()
        for name, value in (("n_x", n_x), ("n_y", n_y)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not callable(build):
            raise TypeError(f"build must be callable (x_var, y_var) -> constraints, got {build!r}")
        self.n_x, self.n_y = n_x, n_y
        self.solver = pick_solver(solver)
        self.solver_options = dict(solver_options or {})
        self.vx, self.vy = cp.Variable(n_x), cp.Variable(n_y)
        self.px, self.py = cp.Parameter(n_x), cp.Parameter(n_y)
        constraints = list(build(self.vx, self.vy))
        objective = cp.sum_squares(self.vx - self.px) + cp.sum_squares(self.vy - self.py)
        self.problem = cp.Problem(cp.Minimize(objective), constraints)
        if not self.problem.is_dcp(dpp=True):
            raise ValueError("build must return convex (DCP) constraints")

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        xv, yv = as_numpy(x), as_numpy(y)
        if xv.shape != (self.n_x,) or yv.shape != (self.n_y,):
            raise ValueError(
                f"expected x of shape ({self.n_x},) and y of shape ({self.n_y},), got {xv.shape} and {yv.shape}"
            )
        self.px.value, self.py.value = xv, yv
        solve_checked(self.problem, self.solver, "the projection onto C", **self.solver_options)
        px = torch.as_tensor(np.asarray(self.vx.value), dtype=x.dtype, device=x.device)
        py = torch.as_tensor(np.asarray(self.vy.value), dtype=y.dtype, device=y.device)
        return px, py


__all__ = ["AffineSet", "BoxSet", "CvxpySet"]

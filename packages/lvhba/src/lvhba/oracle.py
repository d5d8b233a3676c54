"""An exact lower-level oracle built on cvxpy: ground truth and the baselines' inner solver.

For a fixed ``x`` it solves

.. math::

    v(x) = \\min_{\\theta \\in Y} \\{ f(x, \\theta) : g(x, \\theta) \\le 0,\\ h(x, \\theta) = 0 \\}

and returns the minimiser, the value and the KKT multipliers (``λ ≥ 0`` for ``g``, free for
``h``, with the Lagrangian :math:`f + \\lambda^\\top g + \\mu^\\top h`). The cvxpy problem is
built once with a :class:`cvxpy.Parameter` for ``x`` (DPP) and re-solved for each ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lvhba._cvx import InfeasibleError, as_numpy, cvxpy, pick_solver, solve_checked


@dataclass(frozen=True)
class LowerLevelProgram:
    """What a builder returns: cvxpy expressions in the parameter ``x`` and the variable ``θ``.

    Attributes:
        objective: :math:`f(x, \\theta)`, a convex scalar expression.
        g: inequality constraint values, a vector expression constrained ``<= 0`` (or ``None``).
        h: equality constraint values, a vector expression constrained ``== 0`` (or ``None``).
        domain: further constraints on θ alone (the simple set ``Y``); they get no multipliers
            in the returned solution.
    """

    objective: Any
    g: Any = None
    h: Any = None
    domain: Sequence[Any] = ()


@dataclass(frozen=True)
class LowerLevelSolution:
    """The exact lower-level solution at one ``x``.

    Attributes:
        theta: a minimiser θ*(x) (the solver's choice when there are several).
        value: :math:`v(x)`.
        lam: multipliers of ``g`` (≥ 0), shape ``(l,)``.
        mu: multipliers of ``h``, shape ``(m,)``.
        status: cvxpy's status.
    """

    theta: np.ndarray
    value: float
    lam: np.ndarray
    mu: np.ndarray
    status: str

    def multipliers(self) -> np.ndarray:
        """``cat(lam, mu)``, in LV-HBA's order."""
        return np.concatenate([self.lam, self.mu])


Builder = Callable[[Any, Any], LowerLevelProgram]


class CvxpyLowerLevel:
    """Exact lower-level solver.

    Args:
        n_x: size of the upper-level variable ``x``.
        n_theta: size of the lower-level variable ``θ``.
        build: ``build(x_param, theta_var) -> LowerLevelProgram``; called once. The first
            argument is a :class:`cvxpy.Parameter` of shape ``(n_x,)`` holding
            ``param_map(x)``; the problem must be DPP in it.
        param_map: maps the numeric ``x`` to the parameter's value (default: identity); use it
            when ``f`` depends on ``x`` through a non-affine map, e.g. ``np.exp`` for log-weights.
        nonneg: declare the parameter non-negative (needed for DPP when it multiplies a convex
            term, e.g. per-sample weights).
        solver: cvxpy solver name (default: the first installed of CLARABEL, OSQP, ECOS, SCS).
        solver_options: keyword arguments passed to ``Problem.solve``.
    """

    def __init__(
        self,
        n_x: int,
        n_theta: int,
        build: Builder,
        *,
        param_map: Callable[[np.ndarray], np.ndarray] | None = None,
        nonneg: bool = False,
        solver: str | None = None,
        solver_options: dict[str, Any] | None = None,
    ) -> None:
        cp = cvxpy()
        for name, value in (("n_x", n_x), ("n_theta", n_theta)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not callable(build):
            raise TypeError(
                f"build must be callable (x_param, theta_var) -> LowerLevelProgram, got {build!r}"
            )
        self.n_x, self.n_theta = n_x, n_theta
        self.solver = pick_solver(solver)
        self.solver_options = dict(solver_options or {})
        self.param_map = param_map
        self.x = cp.Parameter(n_x, nonneg=nonneg)
        self.theta = cp.Variable(n_theta)
        program = build(self.x, self.theta)
        if not isinstance(program, LowerLevelProgram):
            raise TypeError(f"build must return a LowerLevelProgram, got {type(program).__name__}")
        self._g = None if program.g is None else program.g <= 0
        self._h = None if program.h is None else program.h == 0
        constraints = [c for c in (self._g, self._h) if c is not None] + list(program.domain)
        self.problem = cp.Problem(cp.Minimize(program.objective), constraints)
        if not self.problem.is_dcp(dpp=True):
            raise ValueError(
                "build must return a DPP convex program in the parameter x (see cvxpy's DPP rules; "
                "move non-affine maps of x into param_map)"
            )

    def solve(self, x: Tensor | np.ndarray) -> LowerLevelSolution:
        """Solve the lower level at ``x``.

        Raises:
            InfeasibleError: the lower level has no feasible point at ``x`` (cvxpy's status).
        """
        xv = as_numpy(x).reshape(-1)
        if xv.shape != (self.n_x,):
            raise ValueError(
                f"x must have {self.n_x} entries, got shape {tuple(np.shape(as_numpy(x)))}"
            )
        if not np.all(np.isfinite(xv)):
            raise ValueError("x must be finite")
        self.x.value = (
            xv if self.param_map is None else np.asarray(self.param_map(xv), dtype=np.float64)
        )
        try:
            solve_checked(
                self.problem, self.solver, "the lower-level problem", **self.solver_options
            )
        except InfeasibleError as exc:
            raise InfeasibleError(f"{exc} at x with norm {np.linalg.norm(xv):.4g}") from None
        lam = (
            np.zeros(0)
            if self._g is None
            else np.atleast_1d(np.asarray(self._g.dual_value, dtype=np.float64))
        )
        mu = (
            np.zeros(0)
            if self._h is None
            else np.atleast_1d(np.asarray(self._h.dual_value, dtype=np.float64))
        )
        return LowerLevelSolution(
            theta=np.asarray(self.theta.value, dtype=np.float64).copy(),
            value=float(self.problem.value),
            lam=lam.copy(),
            mu=mu.copy(),
            status=str(self.problem.status),
        )

    def value(self, x: Tensor | np.ndarray) -> float:
        """:math:`v(x)`."""
        return self.solve(x).value


def lower_level_gap(
    problem_f: Callable[[Tensor, Tensor], Tensor], oracle: CvxpyLowerLevel, x: Tensor, y: Tensor
) -> float:
    """The true lower-level optimality gap :math:`f(x, y) - v(x) \\ge 0` (up to solver
    tolerance) for a ``y`` that satisfies the lower-level constraints."""
    with torch.no_grad():
        return float(problem_f(x, y)) - oracle.value(x)


__all__ = ["CvxpyLowerLevel", "LowerLevelProgram", "LowerLevelSolution", "lower_level_gap"]

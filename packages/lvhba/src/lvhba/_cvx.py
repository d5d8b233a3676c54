"""Shared cvxpy plumbing: solver choice and status checks."""

from __future__ import annotations

from typing import Any

import numpy as np

ACCEPTED = ("optimal", "optimal_inaccurate")
DEFAULT_SOLVERS = ("CLARABEL", "OSQP", "ECOS", "SCS")


class InfeasibleError(ValueError):
    """cvxpy reported that a problem (a lower level, or a projection's set) has no solution."""


class SolverError(RuntimeError):
    """cvxpy's solver failed without certifying infeasibility."""


def cvxpy() -> Any:
    import cvxpy as cp

    return cp


def pick_solver(solver: str | None) -> str:
    """``solver`` if cvxpy has it installed, else the first installed of :data:`DEFAULT_SOLVERS`."""
    cp = cvxpy()
    installed = set(cp.installed_solvers())
    if solver is not None:
        if not isinstance(solver, str) or solver.upper() not in installed:
            raise ValueError(
                f"solver must be one of the installed cvxpy solvers {sorted(installed)}, got {solver!r}"
            )
        return solver.upper()
    for name in DEFAULT_SOLVERS:
        if name in installed:
            return name
    raise ValueError(
        f"no default cvxpy solver {DEFAULT_SOLVERS} is installed (installed: {sorted(installed)})"
    )


def solve_checked(problem: Any, solver: str, what: str, **kwargs: Any) -> None:
    """Solve a cvxpy problem and raise a clear error on any status but optimal(_inaccurate)."""
    cp = cvxpy()
    try:
        problem.solve(solver=solver, **kwargs)
    except cp.error.SolverError as exc:
        raise SolverError(f"{what}: cvxpy solver {solver} failed ({exc})") from exc
    status = problem.status
    if status in ("infeasible", "infeasible_inaccurate"):
        raise InfeasibleError(f"{what} is infeasible (cvxpy status {status!r})")
    if status not in ACCEPTED:
        raise SolverError(f"{what}: cvxpy returned status {status!r} with solver {solver}")


def as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)

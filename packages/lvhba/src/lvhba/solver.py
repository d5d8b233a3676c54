"""``LVHBA``: the single-loop solver, with ``solve`` and a step-at-a-time interface."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from lvhba.functional import LVHBAState, StepInfo, lvhba_step, penalty
from lvhba.problem import BilevelProblem

Status = Literal["converged", "max_iter", "callback"]


class NonFiniteIterateError(FloatingPointError):
    """An iterate became NaN or infinite; ``iteration`` says when and ``result`` holds the
    history up to the last finite iterate."""

    def __init__(self, message: str, iteration: int, result: Any) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.result = result


@dataclass
class History:
    """Per-iteration record; entry ``k`` describes iterate ``k`` (before the k-th update).

    Attributes:
        F: upper objective :math:`F(x_k, y_k)`.
        gap: :math:`f(x_k, y_k) - \\hat v_k`, the value-function gap estimate (see
            :class:`lvhba.functional.StepInfo`).
        violation: largest lower-level constraint violation at :math:`(x_k, y_k)`.
        residual: relative step :math:`\\|(x, y)_{k+1} - (x, y)_k\\| / (1 + \\|(x, y)_k\\|)`.
        residual_lower: relative step of :math:`(\\theta, \\lambda)`.
        c_k: penalty parameter.
        time: seconds since the start of ``solve``.
    """

    F: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)
    violation: list[float] = field(default_factory=list)
    residual: list[float] = field(default_factory=list)
    residual_lower: list[float] = field(default_factory=list)
    c_k: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.F)


@dataclass
class LVHBAResult:
    """What :meth:`LVHBA.solve` returns.

    Attributes:
        x, y: the upper- and lower-level solution.
        theta, lam, z: the proximal lower-level iterate and the multipliers (``g`` first).
        n_iter: number of iterations run.
        status: ``"converged"`` (both residuals ≤ ``tol``), ``"max_iter"`` or ``"callback"``.
        message: a sentence describing why it stopped.
        history: per-iteration record.
        multiplier_at_bound: for each multiplier, whether it ended on the truncation bound ``r``
            (a sign that ``multiplier_bound`` is too small).
    """

    x: Tensor
    y: Tensor
    theta: Tensor
    lam: Tensor
    z: Tensor
    n_iter: int
    status: Status
    message: str
    history: History
    multiplier_at_bound: Tensor


Callback = Callable[[LVHBAState, StepInfo], "bool | None"]


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


class LVHBA:
    """Lagrangian value-function Hessian-free bilevel algorithm (LV-HBA).

    Args:
        alpha: step size :math:`\\alpha` of the ``(x, y)`` update.
        beta: step size :math:`\\beta` of the ``z`` update.
        eta: step size :math:`\\eta` of the ``θ`` (and, by default, ``λ``) update.
        gamma1, gamma2: proximal parameters :math:`\\gamma_1, \\gamma_2` of the value function.
        c0: penalty scale :math:`\\underline{c}` in :math:`c_k = \\underline{c}(k+1)^p`.
        p: penalty exponent, ``0 < p < 1/2`` (the convergence theory needs ``p < 1/2``).
        multiplier_bound: truncation ``r`` of the multiplier box
            :math:`Z = [0, r]^l \\times [-r, r]^m`.
        eta_lambda: separate step size for ``λ`` (default: ``eta``, as in the paper).

    Defaults are the settings of the authors' known-solution toy (BiC-GAFFA ``Toy_LVHBA``:
    ``alpha=5e-3, beta=2e-3, eta=3e-2, gamma1=10, gamma2=1, c_k=(k+1)^0.3``) with the official
    LLC toy's multiplier bound ``r = 1000``; see the README's Hyperparameters section.
    """

    def __init__(
        self,
        alpha: float = 5e-3,
        beta: float = 2e-3,
        eta: float = 3e-2,
        gamma1: float = 10.0,
        gamma2: float = 1.0,
        c0: float = 1.0,
        p: float = 0.3,
        multiplier_bound: float = 1000.0,
        eta_lambda: float | None = None,
    ) -> None:
        self.alpha = _positive("alpha", alpha)
        self.beta = _positive("beta", beta)
        self.eta = _positive("eta", eta)
        self.gamma1 = _positive("gamma1", gamma1)
        self.gamma2 = _positive("gamma2", gamma2)
        self.c0 = _positive("c0", c0)
        self.p = _positive("p", p)
        if self.p >= 0.5:
            raise ValueError(
                f"p must satisfy 0 < p < 1/2 (the convergence theory's condition), got {p!r}"
            )
        self.multiplier_bound = _positive("multiplier_bound", multiplier_bound)
        self.eta_lambda = self.eta if eta_lambda is None else _positive("eta_lambda", eta_lambda)

    def __repr__(self) -> str:
        return (
            f"LVHBA(alpha={self.alpha}, beta={self.beta}, eta={self.eta}, gamma1={self.gamma1}, "
            f"gamma2={self.gamma2}, c0={self.c0}, p={self.p}, multiplier_bound={self.multiplier_bound}, "
            f"eta_lambda={self.eta_lambda})"
        )

    # ------------------------------------------------------------------ step-at-a-time interface
    def init(
        self,
        problem: BilevelProblem,
        x0: Tensor,
        y0: Tensor,
        *,
        theta0: Tensor | None = None,
        lam0: Tensor | float = 0.0,
        z0: Tensor | float = 0.0,
    ) -> LVHBAState:
        """The starting state: ``(x0, y0)`` projected onto ``C``, ``θ0`` (default ``y0``)
        projected onto ``Y``, and the multipliers clipped into their box. Inputs are copied."""
        if not isinstance(problem, BilevelProblem):
            raise TypeError(f"problem must be a BilevelProblem, got {type(problem).__name__}")
        x = _vector_arg("x0", x0)
        y = _vector_arg("y0", y0, like=x)
        theta = y.clone() if theta0 is None else _vector_arg("theta0", theta0, like=x)
        if theta.shape != y.shape:
            raise ValueError(
                f"theta0 must have the shape of y0 {tuple(y.shape)}, got {tuple(theta.shape)}"
            )
        with torch.no_grad():
            for name, fn in (("F", problem.F), ("f", problem.f)):
                value = fn(x, y)
                if not isinstance(value, Tensor) or value.numel() != 1:
                    raise ValueError(f"{name}(x0, y0) must return a scalar tensor, got {value!r}")
            n_g, n_h = problem.n_constraints(x, y)
            x, y = problem.project(x, y)
            theta = problem.project_lower(x, theta)
        lo, hi = self._box(n_g, n_h, x)
        lam = torch.clamp(_multiplier_arg("lam0", lam0, n_g + n_h, x), lo, hi)
        z = torch.clamp(_multiplier_arg("z0", z0, n_g + n_h, x), lo, hi)
        return LVHBAState(
            x=x.detach(), y=y.detach(), theta=theta.detach(), lam=lam, z=z, k=0, n_ineq=n_g
        )

    def _box(self, n_g: int, n_h: int, like: Tensor) -> tuple[Tensor, Tensor]:
        r = self.multiplier_bound
        lo = torch.cat([like.new_zeros(n_g), like.new_full((n_h,), -r)])
        hi = like.new_full((n_g + n_h,), r)
        return lo, hi

    def step(self, problem: BilevelProblem, state: LVHBAState) -> tuple[LVHBAState, StepInfo]:
        """One iteration from ``state`` (see :func:`lvhba.functional.lvhba_step`)."""
        n_g = state.n_ineq
        lo, hi = self._box(n_g, state.lam.numel() - n_g, state.x)
        return lvhba_step(
            problem,
            state,
            alpha=self.alpha,
            beta=self.beta,
            eta=self.eta,
            eta_lambda=self.eta_lambda,
            gamma1=self.gamma1,
            gamma2=self.gamma2,
            c_k=penalty(state.k, self.c0, self.p),
            lam_lower=lo,
            lam_upper=hi,
        )

    # ------------------------------------------------------------------------------- solve
    def solve(
        self,
        problem: BilevelProblem,
        x0: Tensor,
        y0: Tensor,
        max_iter: int = 10_000,
        tol: float = 0.0,
        callback: Callback | None = None,
        *,
        theta0: Tensor | None = None,
        lam0: Tensor | float = 0.0,
        z0: Tensor | float = 0.0,
        record_violation: bool = True,
    ) -> LVHBAResult:
        """Run LV-HBA from ``(x0, y0)``.

        Args:
            problem: the bilevel problem.
            x0, y0: starting point (1-D tensors; float64 recommended); projected onto ``C``.
            max_iter: iteration limit.
            tol: stop when the relative steps of ``(x, y)`` and of ``(θ, λ)`` are both ≤ ``tol``
                (``0`` runs all ``max_iter`` iterations).
            callback: called as ``callback(state, info)`` after every iteration with the new
                state and the :class:`~lvhba.functional.StepInfo` of the previous one; returning
                ``True`` stops the run (status ``"callback"``).
            theta0, lam0, z0: starting lower-level iterate (default ``y0``) and multipliers.
            record_violation: evaluate the constraint violation at every iterate (one extra
                ``g``/``h`` call per iteration).

        Raises:
            NonFiniteIterateError: an iterate became NaN/inf (the error names the iteration).
        """
        _check_run_options(max_iter, tol, callback)
        state = self.init(problem, x0, y0, theta0=theta0, lam0=lam0, z0=z0)
        history = History()
        start = time.perf_counter()
        status: Status = "max_iter"
        message = f"reached max_iter={max_iter}"
        for _ in range(max_iter):
            new, info = self.step(problem, state)
            bad = _first_nonfinite(new)
            if bad is not None:
                result = self._result(state, history, "max_iter", "", problem)
                raise NonFiniteIterateError(
                    f"LV-HBA produced a non-finite {bad} at iteration {state.k + 1} "
                    "(reduce the step sizes alpha/eta or increase gamma2)",
                    state.k + 1,
                    result,
                )
            res = _rel_step((state.x, state.y), (new.x, new.y))
            res_low = _rel_step((state.theta, state.lam), (new.theta, new.lam))
            history.F.append(info.F)
            history.gap.append(info.gap)
            history.violation.append(
                problem.violation(state.x, state.y) if record_violation else math.nan
            )
            history.residual.append(res)
            history.residual_lower.append(res_low)
            history.c_k.append(info.c_k)
            history.time.append(time.perf_counter() - start)
            state = new
            if callback is not None and callback(state, info):
                status, message = "callback", f"the callback stopped the run at iteration {state.k}"
                break
            if tol > 0 and res <= tol and res_low <= tol:
                status = "converged"
                message = f"relative steps {res:.2e} and {res_low:.2e} fell below tol={tol:g} at iteration {state.k}"
                break
        return self._result(state, history, status, message, problem)

    def _result(
        self,
        state: LVHBAState,
        history: History,
        status: Status,
        message: str,
        problem: BilevelProblem,
    ) -> LVHBAResult:
        n_g = state.n_ineq
        r = self.multiplier_bound
        at = torch.zeros(state.lam.numel(), dtype=torch.bool)
        at[:n_g] = state.lam[:n_g].detach().cpu() >= r * (1 - 1e-12)
        at[n_g:] = state.lam[n_g:].detach().cpu().abs() >= r * (1 - 1e-12)
        return LVHBAResult(
            x=state.x,
            y=state.y,
            theta=state.theta,
            lam=state.lam,
            z=state.z,
            n_iter=state.k,
            status=status,
            message=message,
            history=history,
            multiplier_at_bound=at,
        )


def _check_run_options(max_iter: object, tol: object, callback: object) -> None:
    """The loop options shared by :meth:`LVHBA.solve` and the baselines' ``solve``."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")


def _vector_arg(name: str, value: object, like: Tensor | None = None) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != 1 or value.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if like is not None and (value.dtype != like.dtype or value.device != like.device):
        raise ValueError(
            f"{name} must have x0's dtype and device ({like.dtype}, {like.device}), got ({value.dtype}, {value.device})"
        )
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    return value.detach().clone()


def _multiplier_arg(name: str, value: Tensor | float, size: int, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        if value.shape != (size,):
            raise ValueError(
                f"{name} must have shape ({size},) (one entry per constraint), got {tuple(value.shape)}"
            )
        out = value.detach().to(dtype=like.dtype, device=like.device).clone()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out = like.new_full((size,), float(value))
    else:
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _first_nonfinite(state: LVHBAState) -> str | None:
    for name in ("x", "y", "theta", "lam", "z"):
        if not bool(torch.isfinite(getattr(state, name)).all()):
            return name
    return None


def _rel_step(old: tuple[Tensor, Tensor], new: tuple[Tensor, Tensor]) -> float:
    num = math.sqrt(sum(float(torch.sum((b - a) ** 2)) for a, b in zip(old, new)))
    den = 1.0 + math.sqrt(sum(float(torch.sum(a**2)) for a in old))
    return num / den


__all__ = ["LVHBA", "History", "LVHBAResult", "NonFiniteIterateError"]

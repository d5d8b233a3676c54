"""The constrained bilevel problem that LV-HBA and the baselines solve.

.. math::

    \\min_{(x, y) \\in C,\\ } F(x, y) \\quad \\text{s.t.} \\quad
    y \\in S(x) = \\arg\\min_{\\theta \\in Y} \\{ f(x, \\theta) :
    g(x, \\theta) \\le 0,\\ h(x, \\theta) = 0 \\},

with :math:`C = \\{(x, y) \\in X \\times Y : g(x, y) \\le 0,\\ h(x, y) = 0\\}`. ``x`` (upper
level) and ``y``/``θ`` (lower level) are flat 1-D tensors. Every callable works on torch tensors
and is differentiated by autograd; LV-HBA only needs first derivatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Objective = Callable[[Tensor, Tensor], Tensor]
"""``(x, θ) -> scalar tensor``."""
Constraint = Callable[[Tensor, Tensor], Tensor]
"""``(x, θ) -> 1-D tensor`` of fixed length."""
ProjectXY = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""Euclidean projection of ``(x, y)`` onto the coupled feasible set ``C``."""
ProjectTheta = Callable[[Tensor, Tensor], Tensor]
"""``(x, θ) -> θ``: Euclidean projection of ``θ`` onto the simple set ``Y``."""


@dataclass(frozen=True)
class BilevelProblem:
    """A bilevel problem with (possibly coupled) lower-level constraints.

    Attributes:
        F: upper-level objective :math:`F(x, y)`, returns a scalar tensor.
        f: lower-level objective :math:`f(x, \\theta)`, returns a scalar tensor; convex in θ.
        g: lower-level inequality constraints :math:`g(x, \\theta) \\le 0`, a 1-D tensor of
            fixed length ``l`` (or ``None``); convex in θ.
        h: lower-level equality constraints :math:`h(x, \\theta) = 0`, a 1-D tensor of fixed
            length ``m`` (or ``None``); affine in θ.
        project_xy: Euclidean projection onto ``C`` (see :mod:`lvhba.sets`); ``None`` means
            ``C`` is the whole space (then ``g``/``h`` must not restrict ``(x, y)``, which LV-HBA
            cannot check: give a projection whenever the constraints bind).
        project_theta: Euclidean projection onto ``Y`` as ``(x, θ) -> θ``; ``None`` means
            ``Y = R^{n_θ}``.
    """

    F: Objective
    f: Objective
    g: Constraint | None = None
    h: Constraint | None = None
    project_xy: ProjectXY | None = None
    project_theta: ProjectTheta | None = None

    def __post_init__(self) -> None:
        for name in ("F", "f"):
            if not callable(getattr(self, name)):
                raise TypeError(
                    f"{name} must be callable (x, theta) -> scalar tensor, got {getattr(self, name)!r}"
                )
        for name in ("g", "h", "project_xy", "project_theta"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None, got {value!r}")

    # ----------------------------------------------------------------------------------------
    def constraints(self, x: Tensor, theta: Tensor) -> Tensor:
        """``cat(g(x, θ), h(x, θ))`` as one 1-D tensor (empty when there are no constraints)."""
        parts = []
        for name, fn in (("g", self.g), ("h", self.h)):
            if fn is None:
                continue
            value = fn(x, theta)
            if not isinstance(value, Tensor) or value.ndim != 1:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{name}(x, theta) must return a 1-D tensor, got {shape}")
            parts.append(value)
        if not parts:
            return theta.new_zeros(0)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def n_constraints(self, x: Tensor, theta: Tensor) -> tuple[int, int]:
        """``(l, m)``: the numbers of inequality and equality constraints."""
        with torch.no_grad():
            n_g = 0 if self.g is None else int(_vector("g", self.g(x, theta)).numel())
            n_h = 0 if self.h is None else int(_vector("h", self.h(x, theta)).numel())
        return n_g, n_h

    def violation(self, x: Tensor, y: Tensor) -> float:
        """Largest violation of the lower-level constraints at ``(x, y)``:
        :math:`\\max(\\max_i [g_i(x, y)]_+, \\max_j |h_j(x, y)|)` (0 when feasible)."""
        with torch.no_grad():
            worst = 0.0
            if self.g is not None:
                gv = _vector("g", self.g(x, y))
                if gv.numel():
                    worst = max(worst, float(gv.clamp_min(0).max()))
            if self.h is not None:
                hv = _vector("h", self.h(x, y))
                if hv.numel():
                    worst = max(worst, float(hv.abs().max()))
        return worst

    def project(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``Proj_C(x, y)`` (identity when no projection was given)."""
        if self.project_xy is None:
            return x, y
        out = self.project_xy(x, y)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"project_xy must return a tuple (x, y), got {type(out).__name__}")
        px, py = out
        if px.shape != x.shape or py.shape != y.shape:
            raise ValueError(
                f"project_xy changed the shapes: x {tuple(x.shape)} -> {tuple(px.shape)}, "
                f"y {tuple(y.shape)} -> {tuple(py.shape)}"
            )
        return px, py

    def project_lower(self, x: Tensor, theta: Tensor) -> Tensor:
        """``Proj_Y(θ)`` (identity when no projection was given)."""
        if self.project_theta is None:
            return theta
        out = self.project_theta(x, theta)
        if not isinstance(out, Tensor) or out.shape != theta.shape:
            raise ValueError(f"project_theta must return a tensor of shape {tuple(theta.shape)}")
        return out


def _vector(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor) or value.ndim != 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{name}(x, theta) must return a 1-D tensor, got {shape}")
    return value


__all__ = ["BilevelProblem", "Constraint", "Objective", "ProjectTheta", "ProjectXY"]

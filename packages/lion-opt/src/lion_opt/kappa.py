r"""The Lion-𝒦 family: the convex function 𝒦 whose gradient replaces ``sign`` in Lion.

Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts"
(ICLR 2024, arXiv:2310.05898). Lion-𝒦 updates

.. math::

    c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    x_t = x_{t-1} - \eta\,\bigl(\nabla\mathcal K(c_t) + \lambda x_{t-1}\bigr),\qquad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

(here ``m`` is the EMA of gradients; the paper writes it with the opposite sign). For a convex
𝒦 the paper's Lyapunov function shows that the iterates minimise

.. math::

    F(x) = f(x) + \tfrac{1}{\lambda}\,\mathcal K^*(\lambda x),

where 𝒦* is the convex conjugate. When 𝒦* is an indicator (𝒦 positively homogeneous), that term
is the constraint ``λx ∈ dom 𝒦*``; otherwise it adds a regulariser inside that domain.

Every member below documents 𝒦, ∇𝒦, 𝒦*, the problem solved, and its *constraint function*
``constraint(x, λ)``: the gauge of ``dom 𝒦*`` at ``λx``, which is ``≤ 1`` exactly on the feasible
set (``< 1`` for :class:`Tanh`, whose domain is open) and ``0`` when there is no constraint
(:class:`Identity`).

Non-homogeneous members (:class:`Clip`, :class:`DeadZone`, :class:`Tanh`) compare the momentum
with a fixed scale, so the problem they solve depends on the scale of the loss (mean vs sum,
an un-unscaled AMP loss scale). The homogeneous ones (:class:`Sign`, :class:`L2`, :class:`Lp`)
do not.
"""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "L2",
    "Clip",
    "DeadZone",
    "Identity",
    "Kappa",
    "Lp",
    "Sign",
    "Tanh",
    "get_kappa",
]

_TINY = 1e-30


def _positive_finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


class Kappa:
    r"""Base class of a Lion-𝒦 member: a convex 𝒦 given through its gradient.

    A subclass overrides :meth:`direction` (pure) or :meth:`direction_` (in place on a temporary
    the optimizer owns); overriding :meth:`foreach_direction_` with ``torch._foreach_*`` calls is
    optional (the default loops over :meth:`direction_`). For diagnostics it may also provide
    :meth:`value` (𝒦), :meth:`conjugate` (𝒦*) and :meth:`constraint`.

    Attributes:
        pointwise: ``∇𝒦`` acts elementwise (so sharded or flattened parameters give the same
            result); ``False`` for per-tensor reductions such as :class:`L2`.
        bounded: ``dom 𝒦*`` is bounded, so ``λx`` is confined to it (a hard constraint).
    """

    pointwise: bool = True
    bounded: bool = True

    @property
    def spec(self) -> str | None:
        """The string that :func:`get_kappa` maps back to this member (``None`` if custom)."""
        return None

    def direction(self, c: Tensor) -> Tensor:
        r"""``∇𝒦(c)`` as a new tensor; ``c`` is left unchanged."""
        if type(self).direction_ is Kappa.direction_:
            raise NotImplementedError(
                f"{type(self).__name__} must override direction or direction_"
            )
        return self.direction_(c.clone())

    def direction_(self, c: Tensor) -> Tensor:
        r"""``∇𝒦(c)``, written into ``c`` when possible; returns the result."""
        if type(self).direction is Kappa.direction:
            raise NotImplementedError(
                f"{type(self).__name__} must override direction or direction_"
            )
        return self.direction(c)

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        """:meth:`direction_` over a list of tensors (override with ``torch._foreach_*``)."""
        return [self.direction_(c) for c in cs]

    def value(self, c: Tensor) -> Tensor:
        """𝒦(c) as a 0-d tensor."""
        raise NotImplementedError(f"{type(self).__name__} does not define value()")

    def conjugate(self, y: Tensor) -> Tensor:
        """𝒦*(y) as a 0-d tensor (``inf`` outside ``dom 𝒦*``)."""
        raise NotImplementedError(f"{type(self).__name__} does not define conjugate()")

    def constraint(self, x: Tensor, lam: float) -> Tensor:
        """The gauge of ``dom 𝒦*`` at ``λx`` as a 0-d tensor: ``≤ 1`` means feasible."""
        return (x.detach().abs().amax() * lam).to(_real_dtype(x))

    def penalty(self, x: Tensor, lam: float) -> Tensor:
        r"""The term Lion-𝒦 adds to the loss, ``(1/λ)·𝒦*(λx)``, as a 0-d tensor."""
        if lam <= 0:
            raise ValueError(f"lam must be positive, got {lam!r}")
        return self.conjugate(lam * x) / lam

    def __repr__(self) -> str:
        return self.spec or f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.__dict__.items()))))


def _real_dtype(x: Tensor) -> Any:
    return x.real.dtype if x.is_complex() else x.dtype


def _inside(gauge: Tensor) -> Tensor:
    """``gauge ≤ 1`` up to rounding (a few ulps), so ``∇𝒦(c)`` itself counts as inside."""
    import torch

    return gauge <= 1 + 16 * torch.finfo(gauge.dtype).eps


def _inf_outside(y: Tensor, value: Tensor, inside: Tensor) -> Tensor:
    import torch

    return torch.where(inside, value, torch.full_like(value, math.inf))


class Sign(Kappa):
    r"""𝒦(c) = ‖c‖₁, ∇𝒦(c) = sign(c): plain **Lion**.

    𝒦*(y) = 0 if ‖y‖∞ ≤ 1 else ∞, so Lion solves ``min f(x)  s.t.  ‖x‖∞ ≤ 1/λ`` (a box).
    Constraint function: ``λ·max|x|``. ``sign(0) = 0`` as in the official code.
    """

    @property
    def spec(self) -> str:
        return "sign"

    def direction_(self, c: Tensor) -> Tensor:
        return c.sign_()

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        import torch

        torch._foreach_sign_(cs)
        return cs

    def value(self, c: Tensor) -> Tensor:
        return c.abs().sum()

    def conjugate(self, y: Tensor) -> Tensor:
        zero = y.new_zeros(())
        return _inf_outside(y, zero, _inside(y.abs().amax()))


class L2(Kappa):
    r"""𝒦(c) = ‖c‖₂ per tensor, ∇𝒦(c) = c/‖c‖₂ (``0`` at ``c = 0``): normalised momentum.

    𝒦*(y) = 0 if ‖y‖₂ ≤ 1 else ∞: Lion-ℓ2 solves ``min f  s.t.  ‖x‖₂ ≤ 1/λ`` for every
    parameter tensor separately (a Frobenius ball per tensor). Constraint function: ``λ‖x‖₂``.
    Not pointwise: under sharded/flattened parameters the norm would be taken over a shard.
    """

    pointwise = False

    @property
    def spec(self) -> str:
        return "l2"

    def direction_(self, c: Tensor) -> Tensor:
        import torch

        norm = torch.linalg.vector_norm(c).clamp_min_(_TINY)
        return c.div_(norm)

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        import torch

        norms = [n.clamp_min_(_TINY) for n in torch._foreach_norm(cs)]
        torch._foreach_div_(cs, norms)
        return cs

    def value(self, c: Tensor) -> Tensor:
        import torch

        out: Tensor = torch.linalg.vector_norm(c)
        return out

    def conjugate(self, y: Tensor) -> Tensor:
        import torch

        return _inf_outside(y, y.new_zeros(()), _inside(torch.linalg.vector_norm(y)))

    def constraint(self, x: Tensor, lam: float) -> Tensor:
        import torch

        out: Tensor = torch.linalg.vector_norm(x.detach()) * lam
        return out


class Lp(Kappa):
    r"""𝒦(c) = ‖c‖_p per tensor (p > 1), ∇𝒦(c) = sign(c)·(|c|/‖c‖_p)^{p−1}: "Lion-ℓp".

    𝒦*(y) = 0 if ‖y‖_q ≤ 1 (1/p + 1/q = 1) else ∞: solves ``min f  s.t.  ‖x‖_q ≤ 1/λ`` per
    tensor. ``p → 1`` approaches :class:`Sign` (the box), ``p = 2`` is :class:`L2`. Constraint
    function: ``λ‖x‖_q``. Not pointwise.
    """

    pointwise = False

    def __init__(self, p: float) -> None:
        p = _positive_finite("p", p)
        if p <= 1.0:
            raise ValueError(f"p must be > 1 for Lp (use 'sign' for p = 1), got {p!r}")
        self.p = p

    @property
    def q(self) -> float:
        """The dual exponent, ``p/(p−1)``."""
        return self.p / (self.p - 1.0)

    @property
    def spec(self) -> str:
        return f"lp({self.p!r})"

    def direction_(self, c: Tensor) -> Tensor:
        import torch

        norm = torch.linalg.vector_norm(c, ord=self.p).clamp_min_(_TINY)
        sign = c.sign()
        return c.abs_().div_(norm).pow_(self.p - 1.0).mul_(sign)

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        import torch

        norms = [n.clamp_min_(_TINY) for n in torch._foreach_norm(cs, self.p)]
        signs = torch._foreach_sign(cs)
        torch._foreach_abs_(cs)
        torch._foreach_div_(cs, norms)
        torch._foreach_pow_(cs, self.p - 1.0)
        torch._foreach_mul_(cs, signs)
        return cs

    def value(self, c: Tensor) -> Tensor:
        import torch

        out: Tensor = torch.linalg.vector_norm(c, ord=self.p)
        return out

    def conjugate(self, y: Tensor) -> Tensor:
        import torch

        return _inf_outside(y, y.new_zeros(()), _inside(torch.linalg.vector_norm(y, ord=self.q)))

    def constraint(self, x: Tensor, lam: float) -> Tensor:
        import torch

        out: Tensor = torch.linalg.vector_norm(x.detach(), ord=self.q) * lam
        return out


class Clip(Kappa):
    r"""𝒦(c) = Σ huber_δ(c_i), ∇𝒦(c) = clip(c/δ, −1, 1) (optax ``mode='refined'`` is δ = 1).

    huber_δ(c) = c²/(2δ) for |c| ≤ δ, |c| − δ/2 otherwise; 𝒦*(y) = (δ/2)‖y‖² if ‖y‖∞ ≤ 1 else ∞.
    Solves ``min f(x) + (δλ/2)‖x‖²  s.t.  ‖x‖∞ ≤ 1/λ`` (box plus ridge).
    Constraint function: ``λ·max|x|``. δ is on the scale of the gradient.
    """

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = _positive_finite("delta", delta)

    @property
    def spec(self) -> str:
        return f"clip({self.delta!r})"

    def direction_(self, c: Tensor) -> Tensor:
        return c.div_(self.delta).clamp_(-1.0, 1.0)

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        import torch

        torch._foreach_div_(cs, self.delta)
        torch._foreach_clamp_min_(cs, -1.0)
        torch._foreach_clamp_max_(cs, 1.0)
        return cs

    def value(self, c: Tensor) -> Tensor:
        import torch

        a = c.abs()
        d = self.delta
        return torch.where(a <= d, a * a / (2 * d), a - d / 2).sum()

    def conjugate(self, y: Tensor) -> Tensor:
        return _inf_outside(y, 0.5 * self.delta * (y * y).sum(), _inside(y.abs().amax()))


class DeadZone(Kappa):
    r"""𝒦(c) = Σ max(|c_i| − e, 0), ∇𝒦(c) = sign(c)·1[|c| > e]: Lion with a dead zone.

    𝒦*(y) = e‖y‖₁ if ‖y‖∞ ≤ 1 else ∞. Solves ``min f(x) + e‖x‖₁  s.t.  ‖x‖∞ ≤ 1/λ``: the box
    plus a lasso term, so small-gradient coordinates decay to exactly zero (sparsity).
    Constraint function: ``λ·max|x|``. ``e`` is on the scale of the gradient.
    """

    def __init__(self, e: float) -> None:
        self.e = _positive_finite("e", e)

    @property
    def spec(self) -> str:
        return f"deadzone({self.e!r})"

    def direction_(self, c: Tensor) -> Tensor:
        # sign(c)·sign(max(|c| − e, 0)); written with arithmetic so the foreach path matches.
        gate = c.abs().sub_(self.e).clamp_min_(0.0).sign_()
        return c.sign_().mul_(gate)

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        import torch

        gates = torch._foreach_abs(cs)
        torch._foreach_sub_(gates, self.e)
        torch._foreach_clamp_min_(gates, 0.0)
        torch._foreach_sign_(gates)
        torch._foreach_sign_(cs)
        torch._foreach_mul_(cs, gates)
        return cs

    def value(self, c: Tensor) -> Tensor:
        return (c.abs() - self.e).clamp_min(0.0).sum()

    def conjugate(self, y: Tensor) -> Tensor:
        return _inf_outside(y, self.e * y.abs().sum(), _inside(y.abs().amax()))


class Tanh(Kappa):
    r"""𝒦(c) = (1/β)Σ log cosh(βc_i), ∇𝒦(c) = tanh(βc) (optax ``mode='smooth'``).

    𝒦*(y) = (1/β)Σ [y_i artanh(y_i) + ½ log(1 − y_i²)] for ‖y‖∞ < 1, else ∞ (at |y_i| = 1
    the limit is log 2/β per coordinate). Solves ``min f(x) + (1/λ)𝒦*(λx)``: an entropy-like
    barrier that keeps ``λ|x_i| < 1`` strictly. Constraint function: ``λ·max|x|`` (``< 1``).
    As β → ∞ this approaches :class:`Sign`.
    """

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = _positive_finite("beta", beta)

    @property
    def spec(self) -> str:
        return f"tanh({self.beta!r})"

    def direction_(self, c: Tensor) -> Tensor:
        return c.mul_(self.beta).tanh_()

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        import torch

        torch._foreach_mul_(cs, self.beta)
        torch._foreach_tanh_(cs)
        return cs

    def value(self, c: Tensor) -> Tensor:
        import torch

        u = self.beta * c
        # log cosh(u) = |u| + log1p(exp(-2|u|)) - log 2, stable for large |u|.
        a = u.abs()
        return (a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)).sum() / self.beta

    def conjugate(self, y: Tensor) -> Tensor:
        import torch

        a = y.abs()
        inside = a < 1
        safe = torch.where(inside, a, torch.zeros_like(a))
        terms = safe * torch.atanh(safe) + 0.5 * torch.log1p(-safe * safe)
        terms = torch.where(a == 1, torch.full_like(a, math.log(2.0)), terms)
        value = terms.sum() / self.beta
        return _inf_outside(y, value, a.amax() <= 1)


class Identity(Kappa):
    r"""𝒦(c) = ½‖c‖², ∇𝒦(c) = c: heavy-ball momentum SGD with decoupled weight decay.

    𝒦*(y) = ½‖y‖², so the solved problem is ridge, ``min f(x) + (λ/2)‖x‖²``, with no
    constraint. Constraint function: ``0`` (``dom 𝒦*`` is everything).
    """

    bounded = False

    @property
    def spec(self) -> str:
        return "identity"

    def direction_(self, c: Tensor) -> Tensor:
        return c

    def foreach_direction_(self, cs: list[Tensor]) -> list[Tensor]:
        return cs

    def value(self, c: Tensor) -> Tensor:
        return 0.5 * (c * c).sum()

    def conjugate(self, y: Tensor) -> Tensor:
        return 0.5 * (y * y).sum()

    def constraint(self, x: Tensor, lam: float) -> Tensor:
        return x.new_zeros((), dtype=_real_dtype(x))


_PLAIN: dict[str, type[Kappa]] = {"sign": Sign, "l2": L2, "identity": Identity}
_WITH_ARG: dict[str, tuple[type[Kappa], bool]] = {
    # name -> (class, argument optional)
    "clip": (Clip, True),
    "tanh": (Tanh, True),
    "deadzone": (DeadZone, False),
    "lp": (Lp, False),
}
_SPEC = re.compile(r"^\s*([a-z0-9]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")
KNOWN = "sign, l2, lp(p), clip(delta), deadzone(e), tanh(beta), identity"


@functools.lru_cache(maxsize=128)
def _parse(spec: str) -> Kappa:
    match = _SPEC.match(spec.lower())
    if match is None:
        raise ValueError(f"kappa={spec!r} is not a kappa spec (known: {KNOWN})")
    name, arg = match.group(1), match.group(2)
    if name in _PLAIN:
        if arg:
            raise ValueError(f"kappa={spec!r}: {name!r} takes no argument")
        return _PLAIN[name]()
    if name in _WITH_ARG:
        cls, optional = _WITH_ARG[name]
        if not arg:
            if optional:
                return cls()
            raise ValueError(f"kappa={spec!r}: {name!r} needs an argument, e.g. '{name}(0.1)'")
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"kappa={spec!r}: argument {arg!r} is not a number") from None
        return cls(value)  # type: ignore[call-arg]
    raise ValueError(f"unknown kappa {spec!r} (known: {KNOWN})")


def get_kappa(kappa: str | Kappa) -> Kappa:
    """Resolve a kappa spec (``"sign"``, ``"clip(0.5)"``, ...) or pass a :class:`Kappa` through.

    Raises:
        ValueError: unknown name, malformed spec or invalid parameter.
        TypeError: ``kappa`` is neither a string nor a :class:`Kappa`.
    """
    if isinstance(kappa, Kappa):
        return kappa
    if isinstance(kappa, str):
        return _parse(kappa)
    raise TypeError(f"kappa must be a string ({KNOWN}) or a lion_opt.Kappa, got {kappa!r}")

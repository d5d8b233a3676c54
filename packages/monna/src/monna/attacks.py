"""Byzantine attacks on parameters (the honest half-steps), as in the paper's experiments.

Every attack is omniscient: it sees all honest half-steps :math:`x_1^{t+1/2}, \\dots, x_H^{t+1/2}`
(rows of ``honest``) and returns one vector, which all ``f`` Byzantine nodes send to every honest
node (official ``attacks/*.py``). With :math:`\\bar x` the honest mean and :math:`\\sigma` the
coordinate-wise unbiased standard deviation:

- sign flipping: :math:`-\\bar x`;
- label flipping: :math:`\\bar x - \\gamma_t \\cdot \\mathrm{mean}_i \\nabla \\ell(x_i; \\text{flipped labels})`;
- ALIE ("a little is enough"): :math:`\\bar x + \\tau \\sigma`;
- FOE ("fall of empires"): :math:`\\bar x - \\tau \\bar x`;
- mimic: a copy of honest node ``target``'s vector;
- non-finite: a vector of NaN (a crashed or buggy node).

With ``tau=None`` (the official default ``factor=-16``), ALIE and FOE choose :math:`\\tau` by the
official line search (:func:`monna.functional.line_maximize`, ``evals`` evaluations) maximising
:math:`\\lVert \\mathrm{mean}_i\\, R_i(\\text{honest} \\cup f \\text{ copies}) - \\bar x \\rVert^2`,
where :math:`R_i` is the mixing rule run with pivot ``i`` (pivot-free rules are run once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from monna.aggregators import Aggregator
from monna.functional import line_maximize


@dataclass(frozen=True)
class AttackContext:
    """What an attack may read besides the honest vectors.

    Attributes:
        lr: the current learning rate :math:`\\gamma_t`.
        flipped_grads: ``(H, d)`` gradients of the honest nodes on label-flipped minibatches, or
            ``None`` when the attack does not ask for them.
        step: the step index.
    """

    lr: float
    flipped_grads: torch.Tensor | None = None
    step: int = 0


class Attack:
    """Base class: ``attack(honest (H, d), f, aggregator, context) -> (d,)``."""

    name = "attack"
    #: the executor computes label-flipped gradients only for attacks that ask for them
    needs_flipped_grads = False

    def __call__(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        if not isinstance(honest, torch.Tensor) or honest.ndim != 2 or honest.shape[0] == 0:
            raise ValueError(
                f"honest must be a (H, d) tensor with H >= 1, got {getattr(honest, 'shape', honest)!r}"
            )
        return self._attack(honest, f, aggregator, context)

    def _attack(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SignFlipping(Attack):
    """:math:`-\\bar x` (on parameters, as the official code)."""

    name = "sign_flipping"

    def _attack(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        return -honest.mean(dim=0)


class LabelFlipping(Attack):
    """:math:`\\bar x - \\gamma_t\\, \\mathrm{mean}_i g_i^{\\text{flip}}`, labels :math:`y \\to K - 1 - y`."""

    name = "label_flipping"
    needs_flipped_grads = True

    def _attack(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        if context.flipped_grads is None:
            raise ValueError(
                "LabelFlipping needs context.flipped_grads (the executor computes them)"
            )
        return honest.mean(dim=0) - context.lr * context.flipped_grads.mean(dim=0)


class _Directional(Attack):
    """:math:`\\bar x + \\tau\\, a(\\text{honest})`, with :math:`\\tau` fixed or line-searched."""

    def __init__(self, tau: float | None = None, *, evals: int = 16) -> None:
        if tau is not None and (not isinstance(tau, (int, float)) or not math.isfinite(tau)):
            raise ValueError(f"tau must be a finite number or None (line search), got {tau!r}")
        if not isinstance(evals, int) or isinstance(evals, bool) or evals < 1:
            raise ValueError(f"evals must be a positive int, got {evals!r}")
        self.tau = None if tau is None else float(tau)
        self.evals = evals
        self.last_tau: float | None = None

    def direction(self, honest: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _attack(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        mean = honest.mean(dim=0)
        a = self.direction(honest, mean)
        tau = self.tau
        if tau is None:
            tau = line_maximize(
                lambda t: attack_objective(honest, mean + t * a, f, aggregator), evals=self.evals
            )
        self.last_tau = tau
        return mean + tau * a

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau}, evals={self.evals})"


class ALIE(_Directional):
    """A little is enough: :math:`\\bar x + \\tau \\sigma` (σ: unbiased coordinate-wise std)."""

    name = "alie"

    def direction(self, honest: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        if honest.shape[0] < 2:
            return torch.zeros_like(mean)
        return honest.var(dim=0, unbiased=True).sqrt()


class FOE(_Directional):
    """Fall of empires: :math:`\\bar x - \\tau \\bar x` (byzfl's IPM with ``tau`` is our ``1 + tau``)."""

    name = "foe"

    def direction(self, honest: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return -mean


class Mimic(Attack):
    """Send a copy of honest node ``target``'s vector (official ``mimic``: node 0)."""

    name = "mimic"

    def __init__(self, target: int = 0) -> None:
        if not isinstance(target, int) or isinstance(target, bool) or target < 0:
            raise ValueError(f"target must be a non-negative int, got {target!r}")
        self.target = target

    def _attack(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        if self.target >= honest.shape[0]:
            raise ValueError(
                f"target={self.target} but there are only {honest.shape[0]} honest nodes"
            )
        return honest[self.target].clone()

    def __repr__(self) -> str:
        return f"Mimic(target={self.target})"


class NonFinite(Attack):
    """Send NaN everywhere (a crashed or numerically broken node)."""

    name = "non_finite"

    def _attack(
        self, honest: torch.Tensor, f: int, aggregator: Aggregator, context: AttackContext
    ) -> torch.Tensor:
        return torch.full_like(honest[0], float("nan"))


def attack_objective(
    honest: torch.Tensor, byz: torch.Tensor, f: int, aggregator: Aggregator
) -> float:
    """The official line-search objective :math:`\\lVert \\mathrm{mean}_i R_i - \\bar x \\rVert^2`.

    The set is all ``H`` honest vectors plus ``f`` copies of ``byz``; pivot rules run once per
    honest pivot ``i`` (batched) and are averaged.
    """
    H = honest.shape[0]
    mean = honest.mean(dim=0)
    vectors = torch.cat([honest, byz.unsqueeze(0).expand(f, -1)], dim=0)
    if aggregator.uses_pivot:
        agg = aggregator.all_pivots(vectors, f, H).mean(dim=0)
    else:
        agg = aggregator(vectors, f, 0)
    diff = agg - mean
    return float(torch.dot(diff, diff))


_ATTACKS: dict[str, type[Attack]] = {
    "sign_flipping": SignFlipping,
    "label_flipping": LabelFlipping,
    "alie": ALIE,
    "foe": FOE,
    "mimic": Mimic,
    "non_finite": NonFinite,
}
ATTACKS = tuple(sorted(_ATTACKS))


def get_attack(attack: str | Attack | None, **kwargs: Any) -> Attack | None:
    """An attack by name (``sign_flipping``, ``label_flipping``, ``alie``, ``foe``, ``mimic``,
    ``non_finite``), an :class:`Attack` passed through, or ``None``/``"none"`` for no attack."""
    if attack is None or attack == "none":
        if kwargs:
            raise TypeError(f"keyword arguments {sorted(kwargs)} given without an attack")
        return None
    if isinstance(attack, Attack):
        if kwargs:
            raise TypeError(f"keyword arguments {sorted(kwargs)} given with an Attack instance")
        return attack
    if not isinstance(attack, str) or attack not in _ATTACKS:
        raise ValueError(f"attack must be one of {(*ATTACKS, 'none')} or an Attack, got {attack!r}")
    return _ATTACKS[attack](**kwargs)


__all__ = [
    "ALIE",
    "ATTACKS",
    "FOE",
    "Attack",
    "AttackContext",
    "LabelFlipping",
    "Mimic",
    "NonFinite",
    "SignFlipping",
    "attack_objective",
    "get_attack",
]

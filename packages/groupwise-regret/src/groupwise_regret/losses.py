r"""Losses: the bounded losses the aggregator sees, and the derivatives the gradient learners use.

AdaNormalHedge's guarantee assumes losses in :math:`[0, 1]`. The aggregator therefore uses

* ``"squared"``: :math:`\ell(\hat y, y) = \big((\hat y - y)/(y_{hi} - y_{lo})\big)^2`,
  with :math:`\hat y` clipped into ``y_range`` when ``clip=True`` (then :math:`\ell \in [0, 1]`);
* ``"absolute"``: :math:`\ell(\hat y, y) = |\hat y - y| / (y_{hi} - y_{lo})`, clipped the same way;
* ``"logistic"`` (labels in :math:`\{0, 1\}`): the log loss of the predicted probability
  :math:`\pi = \sigma(z)` (or of a value learner's output read as a probability), with
  :math:`\pi` clipped into :math:`[\varepsilon, 1-\varepsilon]` and divided by
  :math:`\log(1/\varepsilon)`, so :math:`\ell = -\log \pi_y / \log(1/\varepsilon) \in [0, 1]`.

With ``y_range=(0, 1)`` and ``clip=False`` the squared loss is the official code's
:math:`(\hat y - y)^2` exactly.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
LossName = Literal["squared", "absolute", "logistic"]
LOSSES: tuple[str, ...] = ("squared", "absolute", "logistic")

__all__ = ["LOSSES", "LossName", "bounded_loss", "check_loss", "loss_derivative", "sigmoid"]


def check_loss(loss: object, argument: str = "loss") -> LossName:
    """Validate a loss name (raises ``ValueError`` naming the argument and the value)."""
    if loss not in LOSSES:
        raise ValueError(f"{argument} must be one of {LOSSES}, got {loss!r}")
    return loss  # type: ignore[return-value]


def sigmoid(z: FloatArray | float) -> FloatArray:
    r""":math:`\sigma(z) = 1/(1+e^{-z})`, computed as :math:`(1 + \tanh(z/2))/2` (no overflow)."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64))))


def loss_derivative(loss: LossName, out: FloatArray, y: float) -> FloatArray:
    r"""Derivative of the *unscaled* loss with respect to a linear learner's output ``out``.

    squared: :math:`2(o - y)`; absolute: :math:`\operatorname{sign}(o - y)`; logistic (``out`` a
    logit, :math:`\ell = \log(1 + e^{o}) - y o`): :math:`\sigma(o) - y`.
    """
    if loss == "squared":
        return 2.0 * (out - y)
    if loss == "absolute":
        return np.sign(out - y)
    return sigmoid(out) - y


def bounded_loss(
    loss: LossName,
    pred: FloatArray,
    y: FloatArray | float,
    *,
    y_range: tuple[float, float] = (0.0, 1.0),
    proba_eps: float = 1e-3,
) -> FloatArray:
    """The aggregator's loss of predictions ``pred`` (values, or probabilities for logistic).

    ``pred`` and ``y`` broadcast against each other (e.g. ``(n, G)`` predictions, ``(n, 1)`` labels).

    ``pred`` must already be clipped when clipping is wanted; for ``"logistic"`` the
    probabilities are clipped into ``[proba_eps, 1 - proba_eps]`` here.
    """
    if loss == "logistic":
        pi = np.clip(pred, proba_eps, 1.0 - proba_eps)
        return np.asarray(
            -np.log(np.where(np.asarray(y) >= 0.5, pi, 1.0 - pi)) / -math.log(proba_eps)
        )
    span = y_range[1] - y_range[0]
    if loss == "squared":
        d = (pred - y) / span
        return np.asarray(d * d)
    return np.asarray(np.abs(pred - y) / span)

r"""The math of the groupwise-regret reduction as plain numpy functions, no hidden state.

Acharya, Arunachaleswaran, Kannan, Roth and Ziani, "Oracle Efficient Algorithms for Groupwise
Regret", ICLR 2024 (arXiv:2310.04652). One external-regret learner per group, each seeing only its
group's rounds, mixed by AdaNormalHedge (Luo and Schapire, 2015) over *sleeping* experts.

AdaNormalHedge keeps, for every expert :math:`g`, the cumulative regret :math:`R_g` and the
cumulative absolute regret :math:`C_g` (both start at 0, prior uniform). Its potential weight is

.. math::

    w(R, C) = \tfrac12\Big[\exp\Big(\frac{[R+1]_+^2}{3(C+1)}\Big)
                          - \exp\Big(\frac{[R-1]_+^2}{3(C+1)}\Big)\Big],

and in round :math:`t` with membership :math:`a_t \in \{0,1\}^{|G|}` it plays

.. math::

    p_{t,g} = \frac{a_{t,g}\, w(R_g, C_g)}{\sum_h a_{t,h}\, w(R_h, C_h)} .

After the losses :math:`\ell_{t,g}` of the awake experts are seen, with
:math:`\hat\ell_t = \sum_g p_{t,g}\ell_{t,g}` (the expected loss of a randomly drawn expert),

.. math::

    r_{t,g} = a_{t,g}(\hat\ell_t - \ell_{t,g}), \qquad R_g \mathrel{+}= r_{t,g}, \qquad
    C_g \mathrel{+}= |r_{t,g}| .

The official code evaluates :math:`w` directly, which overflows to ``inf - inf = nan`` once
:math:`R^2/(3(C+1))` passes about 709. Here the weights are computed in log space,

.. math::

    \log w = \log\tfrac12 + \frac{a^2}{D} + \log\Big(-\operatorname{expm1}\Big(\frac{b^2-a^2}{D}\Big)\Big),
    \quad a = [R+1]_+,\; b = [R-1]_+,\; D = 3(C+1),

(:math:`\log w = -\infty` when :math:`a = 0`, i.e. :math:`R \le -1`) and normalised with a
softmax over the awake experts; the result equals the official distribution wherever that one is
finite. Two edge cases follow the official code exactly:

* **no awake expert** (no group active): the uniform distribution over *all* experts; the expected
  loss of such a round is 0 and :math:`R`, :math:`C` do not change;
* **all awake weights are 0** (every awake :math:`R_g \le -1`): the uniform distribution over the
  awake experts.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_LOG_HALF = math.log(0.5)

__all__ = [
    "anh_distribution",
    "anh_log_weight_scalar",
    "anh_log_weights",
    "anh_step",
    "anh_update",
    "anh_weights",
    "ridge_batch",
    "ridge_sherman_morrison",
]


def anh_log_weights(regret: ArrayLike, abs_regret: ArrayLike) -> FloatArray:
    r""":math:`\log w(R, C)` of AdaNormalHedge, elementwise, without overflow (``-inf`` where w = 0)."""
    R = np.asarray(regret, dtype=np.float64)
    D = 3.0 * (np.asarray(abs_regret, dtype=np.float64) + 1.0)
    a = np.maximum(R + 1.0, 0.0)
    b = np.maximum(R - 1.0, 0.0)
    a2 = a * a / D
    q = -np.expm1(b * b / D - a2)  # 1 - exp(-(a^2 - b^2)/D), in [0, 1)
    out = np.full(np.shape(q), -np.inf)
    np.log(q, out=out, where=q > 0.0)
    out += a2 + _LOG_HALF
    return out


def anh_log_weight_scalar(regret: float, abs_regret: float) -> float:
    """Scalar twin of :func:`anh_log_weights` (pure Python, for the per-row loop)."""
    D = 3.0 * (abs_regret + 1.0)
    a = regret + 1.0 if regret > -1.0 else 0.0
    b = regret - 1.0 if regret > 1.0 else 0.0
    a2 = a * a / D
    q = -math.expm1(b * b / D - a2)
    return math.log(q) + a2 + _LOG_HALF if q > 0.0 else -math.inf


def anh_weights(regret: ArrayLike, abs_regret: ArrayLike) -> FloatArray:
    r"""The raw potential weight :math:`w(R, C)` (may overflow to ``inf``; use the log form to mix)."""
    with np.errstate(over="ignore"):
        return np.exp(anh_log_weights(regret, abs_regret))


def _softmax_active(log_w: FloatArray) -> FloatArray:
    """Softmax of the awake experts' log-weights; uniform if all are ``-inf``."""
    top = log_w.max()
    if top == -np.inf:
        return np.full(log_w.shape, 1.0 / log_w.size)
    e = np.exp(log_w - top)
    e /= e.sum()
    return np.asarray(e, dtype=np.float64)


def anh_distribution(regret: ArrayLike, abs_regret: ArrayLike, active: ArrayLike) -> FloatArray:
    """AdaNormalHedge's distribution over all experts for one round (sleeping experts get 0).

    Args:
        regret: cumulative regrets ``R`` of shape ``(G,)``.
        abs_regret: cumulative absolute regrets ``C`` of shape ``(G,)``.
        active: membership ``a_t`` of shape ``(G,)`` (bool or 0/1).

    Returns:
        ``p_t`` of shape ``(G,)``: uniform over all experts when none is awake (official code),
        uniform over the awake ones when all their weights are 0, else the normalised weights.
    """
    R = np.asarray(regret, dtype=np.float64)
    C = np.asarray(abs_regret, dtype=np.float64)
    idx = np.flatnonzero(np.asarray(active))
    if idx.size == 0:
        return np.full(R.shape, 1.0 / R.size)
    p = np.zeros(R.shape)
    p[idx] = _softmax_active(anh_log_weights(R[idx], C[idx]))
    return p


def anh_update(
    regret: ArrayLike,
    abs_regret: ArrayLike,
    p: ArrayLike,
    losses: ArrayLike,
    active: ArrayLike,
) -> tuple[FloatArray, FloatArray, float]:
    r"""One AdaNormalHedge statistics update; returns new ``(R, C, expected_loss)``.

    ``losses`` holds :math:`\ell_{t,g}` for the awake experts (entries of sleeping experts are
    ignored and treated as 0, as in the official code). The inputs are not modified.
    """
    a = np.asarray(active).astype(np.float64)
    ell = np.where(a > 0, np.asarray(losses, dtype=np.float64), 0.0)
    lhat = float(np.dot(np.asarray(p, dtype=np.float64), ell))
    r = (lhat - ell) * a
    return (
        np.asarray(regret, dtype=np.float64) + r,
        np.asarray(abs_regret, dtype=np.float64) + np.abs(r),
        lhat,
    )


def anh_step(
    regret: ArrayLike,
    abs_regret: ArrayLike,
    active: ArrayLike,
    losses: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Distribution then update for one round: returns ``(p_t, R_new, C_new, expected_loss)``."""
    p = anh_distribution(regret, abs_regret, active)
    R, C, lhat = anh_update(regret, abs_regret, p, losses, active)
    return p, R, C, lhat


def ridge_sherman_morrison(
    inv: ArrayLike, b: ArrayLike, x: ArrayLike, y: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    r"""One online ridge step: returns new ``(P, b, theta)``; the inputs are not modified.

    With :math:`P = (\lambda I + \sum_{s<t} x_s x_s^\top)^{-1}` and :math:`b = \sum_{s<t} y_s x_s`,

    .. math::

        u = P x,\quad P \leftarrow P - \frac{u u^\top}{1 + x^\top u},\quad
        b \leftarrow b + y\,x,\quad \theta = P b .

    ``O(d^2)``; this is regularised follow-the-leader (the prediction of round ``t`` uses
    :math:`\theta` from rounds ``< t``), as in the official ``Manual_inv_LinearExpert``.
    """
    P = np.asarray(inv, dtype=np.float64)
    xv = np.asarray(x, dtype=np.float64)
    u = P @ xv
    P_new = P - np.outer(u, u) / (1.0 + xv @ u)
    b_new = np.asarray(b, dtype=np.float64) + y * xv
    return P_new, b_new, P_new @ b_new


def ridge_batch(X: ArrayLike, y: ArrayLike, alpha: float) -> FloatArray:
    r"""Batch ridge :math:`\theta = (\alpha I + X^\top X)^{-1} X^\top y` (the online ridge's target)."""
    Xa = np.asarray(X, dtype=np.float64)
    A = alpha * np.eye(Xa.shape[1]) + Xa.T @ Xa
    return np.asarray(np.linalg.solve(A, Xa.T @ np.asarray(y, dtype=np.float64)), dtype=np.float64)

"""The Balance score (Choi, Kim & Lee, 2023, arXiv:2309.06248) and its companions on true
probabilities.

Sign convention, everywhere in this package: **negative Balance = over-confident**, positive =
under-confident, 0 = no net calibration bias.

With predicted P(positive) :math:`q_i`, label :math:`y_i \\in \\{0, 1\\}`, threshold :math:`t`
(0.5 in the paper) and the side of the threshold :math:`s_i = +1` if :math:`q_i \\ge t`, else
:math:`-1`, the per-sample gain is

.. math::

    g_i = s_i\\,(y_i - q_i) =
    \\begin{cases}
      1 - q_i & q_i \\ge t,\\ y_i = 1 \\quad\\text{(correct)}\\\\
      q_i     & q_i <  t,\\ y_i = 0 \\quad\\text{(correct)}\\\\
      -q_i    & q_i \\ge t,\\ y_i = 0 \\quad\\text{(wrong)}\\\\
      -(1 - q_i) & q_i < t,\\ y_i = 1 \\quad\\text{(wrong)}
    \\end{cases}

and :math:`\\mathrm{Balance} = \\sum_i w_i g_i / \\sum_i w_i`. For :math:`t = 0.5` this is exactly
accuracy minus mean confidence, :math:`\\frac1n\\sum_i (1\\{\\hat y_i = y_i\\} - \\max(q_i, 1 - q_i))`:
the signed, one-bin, top-label calibration gap. Hence :math:`|\\mathrm{Balance}| \\le` top-label
ECE for any binning, with equality for one bin. If the truth is :math:`y_i \\sim
\\mathrm{Bernoulli}(p_i)`, :math:`E[g_i] = s_i (p_i - q_i)`, so :math:`|E[g_i]| = |q_i - p_i|`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from balance_score._binning import CHUNK, scratch
from balance_score._validation import (
    check_binary,
    check_binary_raw,
    check_choice,
    check_probabilities,
    check_threshold,
)

FloatArray = NDArray[np.float64]


def _side(q: FloatArray, t: float) -> FloatArray:
    """s_i = +1 where q_i >= t, else -1."""
    s = (q >= t).astype(np.float64)
    s *= 2.0
    s -= 1.0
    return s


def _gain(y: FloatArray, q: FloatArray, t: float) -> FloatArray:
    d = y - q
    d *= _side(q, t)
    return d


def _gain_sum(y: NDArray[Any], q: FloatArray, t: float, w: FloatArray | None) -> float:
    """Σ_i w_i g_i = 2 Σ_{q_i ≥ t} w_i (y_i − q_i) − Σ_i w_i (y_i − q_i), in cache-sized chunks so
    large inputs are read once. ``y`` holds 0/1 labels of any real dtype (converted per chunk)."""
    total = 0.0
    d_buf, m_buf, i32_buf, _ = scratch(min(CHUNK, q.shape[0]))
    pos_buf = i32_buf.view(np.bool_)  # reused per-thread buffers: no allocation per call
    for a in range(0, q.shape[0], CHUNK):
        qc = q[a : a + CHUNK]
        k = qc.shape[0]
        d, mk, pos = d_buf[:k], m_buf[:k], pos_buf[:k]
        np.copyto(d, y[a : a + CHUNK], casting="unsafe")  # 0/1 labels: exact in float64
        np.subtract(d, qc, out=d)
        if w is not None:
            np.multiply(d, w[a : a + CHUNK], out=d)
        np.greater_equal(qc, t, out=pos)
        np.copyto(mk, pos, casting="unsafe")
        np.multiply(mk, d, out=mk)
        # elementwise + pairwise sums: no BLAS call, so no dependence on BLAS threading
        total += 2.0 * float(mk.sum()) - float(d.sum())
    return total


def balance_gain(
    y_true: Any, y_prob: Any, *, threshold: float = 0.5, pos_label: Any = None
) -> FloatArray:
    """Per-sample Balance gain :math:`g_i = s_i (y_i - q_i)` (see the module docstring).

    Correct predictions score in [0, 1 − t] or [0, t]; wrong ones are negative. Returns a new
    float64 array of length n.
    """
    t = check_threshold(threshold)
    y, q, _ = check_binary(y_true, y_prob, pos_label=pos_label)
    return _gain(y, q, t)


def balance_score(
    y_true: Any,
    y_prob: Any,
    *,
    threshold: float = 0.5,
    pos_label: Any = None,
    sample_weight: Any = None,
) -> float:
    """The Balance score: the (weighted) mean Balance gain. **Negative = over-confident.**

    Args:
        y_true: binary labels, shape (n,). {0, 1}, {-1, 1} or booleans; other label pairs need
            ``pos_label``.
        y_prob: P(positive), shape (n,) or (n, 1), or ``predict_proba`` output of shape (n, 2)
            (column 1 is P(positive); rows must sum to 1). Values must lie in [0, 1]; nothing is
            clipped.
        threshold: decision threshold t; ŷ = 1 iff q ≥ t (ties go to the positive class). The
            paper uses 0.5, where Balance = accuracy − mean confidence.
        pos_label: the label of the positive class (default: 1).
        sample_weight: optional non-negative weights, shape (n,).

    Returns:
        Balance in [−1, 0.5] for t = 0.5: 0 means no net calibration bias (not necessarily
        calibrated: errors on both sides of t cancel, and a constant 0.5 predictor scores 0
        on balanced labels).
    """
    t = check_threshold(threshold)
    y, q, w = check_binary_raw(y_true, y_prob, pos_label=pos_label, sample_weight=sample_weight)
    denom = float(q.shape[0]) if w is None else float(w.sum())
    return _gain_sum(y, q, t, w) / denom


def abs_balance_score(
    y_true: Any,
    y_prob: Any,
    *,
    threshold: float = 0.5,
    pos_label: Any = None,
    sample_weight: Any = None,
) -> float:
    """:math:`|\\mathrm{Balance}|`: a lower-is-better loss for ``sklearn.metrics.make_scorer``.

    Use ``make_scorer(abs_balance_score, greater_is_better=False, response_method="predict_proba")``.
    It measures net calibration bias only: never select models on it alone (a constant
    predictor can score 0).
    """
    return abs(
        balance_score(
            y_true, y_prob, threshold=threshold, pos_label=pos_label, sample_weight=sample_weight
        )
    )


def _check_pair(p_true: Any, y_prob: Any) -> tuple[FloatArray, FloatArray]:
    p = check_probabilities(p_true, "p_true")
    q = check_probabilities(y_prob)
    if p.shape[0] != q.shape[0]:
        raise ValueError(f"p_true and y_prob have different lengths: {p.shape[0]} and {q.shape[0]}")
    return p, q


def expected_balance_score(p_true: Any, y_prob: Any, *, threshold: float = 0.5) -> float:
    """The expectation of Balance over labels y_i ~ Bernoulli(p_i): :math:`\\frac1n\\sum_i s_i (p_i - q_i)`.

    For simulations where the true probabilities are known. Equals
    :math:`-\\mathrm{TCE}` when every prediction errs towards over-confidence and
    :math:`+\\mathrm{TCE}` when every one errs towards under-confidence.
    """
    t = check_threshold(threshold)
    p, q = _check_pair(p_true, y_prob)
    return float(_gain(p, q, t).mean())


def true_calibration_error(p_true: Any, y_prob: Any, *, norm: str = "l1") -> float:
    """True calibration error for simulations, where P(y = 1 | x) = p_true is known.

    ``l1``: :math:`\\frac1n\\sum_i |q_i - p_i|` (the TCE the paper approximates);
    ``l2``: :math:`\\sqrt{\\frac1n\\sum_i (q_i - p_i)^2}`; ``max``: :math:`\\max_i |q_i - p_i|`.
    """
    check_choice(norm, "norm", ("l1", "l2", "max"))
    p, q = _check_pair(p_true, y_prob)
    d = np.abs(q - p)
    if norm == "l1":
        return float(d.mean())
    if norm == "l2":
        return float(np.sqrt(np.mean(d * d)))
    return float(d.max())


__all__ = [
    "abs_balance_score",
    "balance_gain",
    "balance_score",
    "expected_balance_score",
    "true_calibration_error",
]

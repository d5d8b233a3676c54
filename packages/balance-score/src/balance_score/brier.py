"""The Brier score and its two exact decompositions.

Brier score: :math:`\\mathrm{BS} = \\sum_i w_i (q_i - y_i)^2 / \\sum_i w_i` (one-column form; equal to
``sklearn.metrics.brier_score_loss`` for binary input).

**Binned five-term decomposition** (Stephenson, Coelho & Jolliffe, 2008). With bins on q, bin
weights :math:`W_b`, bin means :math:`\\bar q_b, \\bar y_b` and overall mean :math:`\\bar y`:

.. math::

    \\mathrm{BS} = \\underbrace{\\tfrac1W\\sum_b W_b(\\bar q_b - \\bar y_b)^2}_{\\text{REL}}
      - \\underbrace{\\tfrac1W\\sum_b W_b(\\bar y_b - \\bar y)^2}_{\\text{RES}}
      + \\underbrace{\\bar y(1 - \\bar y)}_{\\text{UNC}}
      + \\underbrace{\\tfrac1W\\sum_i w_i (q_i - \\bar q_{b(i)})^2}_{\\text{WBV}}
      - \\underbrace{\\tfrac2W\\sum_i w_i (q_i - \\bar q_{b(i)})(y_i - \\bar y_{b(i)})}_{\\text{WBC}}

holds exactly for any binning (Murphy's three-term form only when q is constant in each bin).

**CORP decomposition** (Dimitriadis, Gneiting & Jordan, PNAS 2021), bin-free. With the isotonic
(PAV) recalibration :math:`\\hat q = \\mathrm{PAV}(y \\mid q)` (tied q pooled first):

.. math::

    \\mathrm{MCB} = \\mathrm{BS}(q) - \\mathrm{BS}(\\hat q), \\quad
    \\mathrm{DSC} = \\mathrm{BS}(\\bar y) - \\mathrm{BS}(\\hat q), \\quad
    \\mathrm{UNC} = \\mathrm{BS}(\\bar y), \\qquad \\mathrm{BS} = \\mathrm{MCB} - \\mathrm{DSC} + \\mathrm{UNC}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from balance_score._binning import CHUNK, assign_bins, bin_edges
from balance_score._validation import check_binary, check_choice, check_int, weighted_mean

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class BrierDecomposition:
    """The five terms; ``brier == reliability - resolution + uncertainty + within_bin_variance -
    within_bin_covariance`` up to rounding."""

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float
    edges: FloatArray


@dataclass(frozen=True)
class CORPDecomposition:
    """``brier == miscalibration - discrimination + uncertainty`` up to rounding.

    ``recalibrated`` holds the isotonic (PAV) recalibration q̂ of every sample, in input order.
    """

    brier: float
    miscalibration: float
    discrimination: float
    uncertainty: float
    recalibrated: FloatArray


def brier_score(
    y_true: Any, y_prob: Any, *, pos_label: Any = None, sample_weight: Any = None
) -> float:
    """Brier score :math:`\\sum_i w_i (q_i - y_i)^2 / \\sum_i w_i` (lower is better)."""
    y, q, w = check_binary(y_true, y_prob, pos_label=pos_label, sample_weight=sample_weight)
    return _squared_error_sum(y, q, w) / (float(q.shape[0]) if w is None else float(w.sum()))


def _squared_error_sum(y: FloatArray, q: FloatArray, w: FloatArray | None) -> float:
    """Σ_i w_i (q_i − y_i)², in cache-sized chunks."""
    total = 0.0
    for a in range(0, q.shape[0], CHUNK):
        d = q[a : a + CHUNK] - y[a : a + CHUNK]
        d *= d
        if w is not None:
            d *= w[a : a + CHUNK]
        total += float(d.sum())
    return total


def brier_decomposition(
    y_true: Any,
    y_prob: Any,
    *,
    n_bins: int = 10,
    strategy: str = "uniform",
    pos_label: Any = None,
    sample_weight: Any = None,
) -> BrierDecomposition:
    """The binned five-term decomposition of the Brier score (module docstring). Bins on P(positive)
    as in :func:`balance_score.expected_calibration_error` (``mode="positive"``)."""
    m = check_int(n_bins, "n_bins")
    check_choice(strategy, "strategy", ("uniform", "quantile"))
    y, q, w = check_binary(y_true, y_prob, pos_label=pos_label, sample_weight=sample_weight)
    edges = bin_edges(q, m, strategy, w)
    idx = assign_bins(q, edges)
    m_eff = edges.shape[0] - 1
    ww = np.ones_like(q) if w is None else w
    weight = np.bincount(idx, weights=ww, minlength=m_eff)
    qsum = np.bincount(idx, weights=ww * q, minlength=m_eff)
    ysum = np.bincount(idx, weights=ww * y, minlength=m_eff)
    total = float(weight.sum())
    full = weight > 0
    qbar = np.zeros_like(weight)
    ybar = np.zeros_like(weight)
    qbar[full] = qsum[full] / weight[full]
    ybar[full] = ysum[full] / weight[full]
    y_mean = float(ysum.sum() / total)
    dq = q - qbar[idx]
    dy = y - ybar[idx]
    d = q - y
    return BrierDecomposition(
        brier=weighted_mean(d * d, w),
        reliability=float(np.dot(weight, (qbar - ybar) ** 2) / total),
        resolution=float(np.dot(weight, np.where(full, ybar - y_mean, 0.0) ** 2) / total),
        uncertainty=y_mean * (1.0 - y_mean),
        within_bin_variance=weighted_mean(dq * dq, w),
        within_bin_covariance=2.0 * weighted_mean(dq * dy, w),
        edges=edges,
    )


#: vectorised PAV rounds before the sequential stack finishes the (already merged) blocks
_PAV_ROUNDS = 64


def _pav_stack(
    bw: FloatArray, by: FloatArray, cnt: IntArray
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Sequential pool-adjacent-violators over blocks (weight, weighted sum, tie-block count)."""
    sw: list[float] = []
    sy: list[float] = []
    sc: list[int] = []
    for wi, yi, ci in zip(bw.tolist(), by.tolist(), cnt.tolist()):
        cw, cy, cc = wi, yi, ci
        # pool while the previous block's mean is >= this one's (cross-multiplied)
        while sw and sy[-1] * cw >= cy * sw[-1]:
            cw += sw.pop()
            cy += sy.pop()
            cc += sc.pop()
        sw.append(cw)
        sy.append(cy)
        sc.append(cc)
    return np.asarray(sw), np.asarray(sy), np.asarray(sc, dtype=np.intp)


def _pav_blocks(bw: FloatArray, by: FloatArray) -> FloatArray:
    """Isotonic fit value of every block of positive weight ``bw`` and weighted sum ``by``.

    Block merging in numpy: every round pools, at once, all adjacent pairs whose means violate
    (mean_j >= mean_{j+1}). Pooling any violating adjacent pair never changes the (unique)
    isotonic solution — in the cumulative-sum diagram the shared point lies on or above the chord
    of its neighbours, so it is not a vertex of the greatest convex minorant — so pooling them
    all simultaneously is as exact as the sequential stack; only the order of the float sums
    differs. Rounds shrink the block count geometrically on real data; after
    :data:`_PAV_ROUNDS` rounds (adversarial input) the sequential stack finishes the merged blocks.
    """
    cnt = np.ones(bw.shape[0], dtype=np.intp)
    for _ in range(_PAV_ROUNDS):
        viol = by[:-1] * bw[1:] >= by[1:] * bw[:-1]
        if not viol.any():
            break
        starts = np.flatnonzero(np.r_[True, ~viol])
        bw = np.add.reduceat(bw, starts)
        by = np.add.reduceat(by, starts)
        cnt = np.add.reduceat(cnt, starts)
    else:
        bw, by, cnt = _pav_stack(bw, by, cnt)
    return np.repeat(by / bw, cnt)


def _isotonic_fit(y: FloatArray, q: FloatArray, w: FloatArray | None = None) -> FloatArray:
    """Weighted isotonic (non-decreasing in q) least-squares fit of y on q by pool-adjacent-
    violators; samples with equal q are pooled first, so they share one value. Input order kept.

    Tie blocks of zero total weight do not constrain the fit; they take the value of the nearest
    block of positive weight before them (after them at the start), as sequential PAV does.
    """
    # any deterministic sort will do: ties are pooled, so only the order of float sums depends on it
    order = np.argsort(q)
    qs = q[order]
    ys = y[order]
    ws = None if w is None else w[order]
    tie = qs[1:] == qs[:-1]
    if not tie.any():  # all q distinct (the common case for continuous scores)
        starts = None
        bw = np.ones_like(qs) if ws is None else ws
        by = ys if ws is None else ws * ys
    else:
        starts = np.flatnonzero(np.r_[True, ~tie])
        bw = np.add.reduceat(np.ones_like(qs) if ws is None else ws, starts)
        by = np.add.reduceat(ys if ws is None else ws * ys, starts)
    pos = bw > 0
    if pos.all():
        per_tie_block = _pav_blocks(bw, by)
    else:
        vals = _pav_blocks(bw[pos], by[pos])
        per_tie_block = vals[np.maximum(np.cumsum(pos) - 1, 0)]
    out = np.empty_like(q)
    if starts is None:
        out[order] = per_tie_block
    else:
        out[order] = np.repeat(per_tie_block, np.diff(np.r_[starts, qs.shape[0]]))
    return out


def corp_decomposition(
    y_true: Any, y_prob: Any, *, pos_label: Any = None, sample_weight: Any = None
) -> CORPDecomposition:
    """The bin-free CORP decomposition of the Brier score (module docstring).

    MCB ≥ 0 is the Brier score an optimal monotone recalibration would remove; DSC ≥ 0 the
    discrimination ability; both are exact, with no binning choice.
    """
    y, q, w = check_binary(y_true, y_prob, pos_label=pos_label, sample_weight=sample_weight)
    qhat = _isotonic_fit(y, q, w)
    y_mean = weighted_mean(y, w)
    d, dh = q - y, qhat - y
    bs, bs_hat = weighted_mean(d * d, w), weighted_mean(dh * dh, w)
    unc = y_mean * (1.0 - y_mean)
    return CORPDecomposition(
        brier=bs,
        miscalibration=bs - bs_hat,
        discrimination=unc - bs_hat,
        uncertainty=unc,
        recalibrated=qhat,
    )


__all__ = [
    "BrierDecomposition",
    "CORPDecomposition",
    "brier_decomposition",
    "brier_score",
    "corp_decomposition",
]

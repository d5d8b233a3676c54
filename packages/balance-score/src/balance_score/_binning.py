"""Binning of calibration scores: edges, bin assignment and per-bin sums.

Bins are closed on the left and open on the right, ``[e_k, e_{k+1})``, except the last, which is
closed, ``[e_{M-1}, e_M]``: a probability of exactly 0 falls in the first bin and exactly 1 in the
last, each counted once (the convention of ``numpy.histogram`` and netcal).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def scores_and_residuals(y: FloatArray, q: FloatArray, mode: str) -> tuple[FloatArray, FloatArray]:
    """The binned score s and the residual r whose bin sums give the calibration gaps.

    ``mode="positive"``: s = q, r = y − q (reliability of P(positive)).
    ``mode="top_label"``: s = max(q, 1 − q), r = 1{ŷ = y} − s with ŷ = 1{q ≥ 0.5}
    (Guo et al.'s confidence calibration; r is exactly the Balance gain).
    """
    if mode == "positive":
        return q, y - q
    pos = q >= 0.5
    conf = np.where(pos, q, 1.0 - q)
    return conf, np.where(pos, y, 1.0 - y) - conf


def bin_edges(scores: FloatArray, n_bins: int, strategy: str) -> FloatArray:
    """Strictly increasing edges from 0 to 1.

    ``uniform``: ``linspace(0, 1, n_bins + 1)``. ``quantile``: the empirical quantiles
    (``numpy.quantile``, linear interpolation) at ``linspace(0, 1, n_bins + 1)`` with the outer
    edges set to 0 and 1; edges that coincide because many scores tie are merged, so fewer than
    ``n_bins`` bins may result (never an empty bin from a collapsed edge).
    """
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return np.unique(edges)


#: samples per chunk: large inputs are processed in cache-sized pieces, so each is read once
CHUNK = 1 << 15

#: half-width (in units of the scaled score t = s / step) of the band around each integer inside
#: which the general equal-width path re-checks an element against the exact edges
_BAND = 2.0**-30


@lru_cache(maxsize=64)
def _uniform_plan(m: int) -> tuple[float, int] | None:
    """How to assign scores to the equal-width edges ``linspace(0, 1, m + 1)`` without a search.

    Returns ``(step, j)`` or ``None`` (use ``searchsorted``). With t = fl(s / step) (monotone in s),
    ``floor(t)`` is the bin, except possibly for s within a few ulps of an edge. ``j = 0``: verified
    exact at every edge, no correction needed. ``j > 0``: the fixed-point index J = floor(t 2^j)
    flags every element with t within ``_BAND`` of an integer; only those are re-checked.
    Both facts are verified here for every edge (monotonicity of t makes that a proof).
    """
    if m < 2 or m > 1 << 16:
        return None
    edges = np.linspace(0.0, 1.0, m + 1)
    step = float(edges[1])
    ek = edges[1:-1]
    below = np.nextafter(ek, -1.0)  # the largest double below each edge
    k = np.arange(1, m, dtype=np.float64)
    t_at, t_below = ek / step, below / step
    if np.all(np.floor(t_at) >= k) and np.all(np.floor(t_below) <= k - 1):
        return step, 0
    if np.all(t_at >= k - _BAND) and np.all(t_below < k + _BAND):
        return step, 62 - int(m).bit_length()
    return None


def _is_uniform(edges: FloatArray) -> bool:
    m = edges.shape[0] - 1
    return bool(
        m > 1
        and edges[0] == 0.0
        and edges[-1] == 1.0
        and np.array_equal(edges, np.linspace(0.0, 1.0, m + 1))
    )


def _uniform_index(
    s: FloatArray, edges: FloatArray, plan: tuple[float, int], t: FloatArray, idx: IntArray
) -> IntArray:
    """Bin index in [0, m] of every score (m only for scores at or just below 1: the caller folds
    it into bin m − 1), written to ``idx``; ``t`` is scratch space of the same length."""
    step, j = plan
    if j == 0:
        np.divide(s, step, out=t)
        np.copyto(idx, t, casting="unsafe")  # truncation = floor for t >= 0
        return idx
    # fl(s / (step 2^-j)) = fl(s / step) 2^j exactly: a power-of-two scaling commutes with rounding
    np.divide(s, step * 2.0**-j, out=t)
    np.copyto(idx, t, casting="unsafe")  # J = floor(t 2^j), fixed point with j fraction bits
    half = 1 << (j - 30)  # _BAND 2^j
    low = t.view(np.intp)
    np.add(idx, half, out=low)
    np.bitwise_and(low, (1 << j) - 1, out=low)
    near = low < 2 * half  # t within _BAND of an integer
    np.right_shift(idx, j, out=idx)
    if near.any():
        at = np.flatnonzero(near)
        idx[at] = np.searchsorted(edges[1:-1], s[at], side="right")
    return idx


def assign_bins(scores: FloatArray, edges: FloatArray) -> IntArray:
    """Bin index of every score (left-closed bins, the last one closed).

    Equal-width edges (``linspace(0, 1, M + 1)``) take a search-free path (:func:`_uniform_plan`)
    that gives exactly ``searchsorted``'s answer.
    """
    m = edges.shape[0] - 1
    plan = _uniform_plan(m) if _is_uniform(edges) else None
    if plan is None:
        return np.asarray(np.searchsorted(edges[1:-1], scores, side="right"), dtype=np.intp)
    out = np.empty(scores.shape[0], dtype=np.intp)
    t = np.empty(min(CHUNK, scores.shape[0]))
    for a in range(0, scores.shape[0], CHUNK):
        sc = scores[a : a + CHUNK]
        _uniform_index(sc, edges, plan, t[: sc.shape[0]], out[a : a + CHUNK])
    np.minimum(out, m - 1, out=out)
    return out


def _bin_sum(idx: IntArray, weights: FloatArray | None, m: int) -> FloatArray:
    """``bincount`` into m bins, anything at index >= m folded into the last bin."""
    c = np.bincount(idx, weights=weights, minlength=m).astype(np.float64, copy=False)
    if c.shape[0] > m:
        c[m - 1] += c[m:].sum()
        c = c[:m]
    return c


def binned_sums(
    y: NDArray[Any],
    q: FloatArray,
    w: FloatArray | None,
    edges: FloatArray,
    mode: str,
    *,
    weights: bool = True,
    scores: bool = False,
) -> tuple[FloatArray | None, FloatArray, FloatArray | None]:
    """Per-bin (total weight, weighted residual sum, weighted score sum) in one chunked pass.

    ``y`` holds 0/1 labels of any real dtype. The weight and score sums are only computed when
    asked for (``None`` otherwise): the l1 ECE needs the residual sums alone.
    """
    m = edges.shape[0] - 1
    plan = _uniform_plan(m) if _is_uniform(edges) else None
    wsum = np.zeros(m) if weights else None
    rsum = np.zeros(m)
    ssum = np.zeros(m) if scores else None
    n = min(CHUNK, q.shape[0])
    ybuf, tbuf, ibuf = np.empty(n), np.empty(n), np.empty(n, dtype=np.intp)
    for a in range(0, q.shape[0], CHUNK):
        qc = q[a : a + CHUNK]
        k = qc.shape[0]
        yc = ybuf[:k]
        np.copyto(yc, y[a : a + CHUNK], casting="unsafe")  # 0/1 labels: exact in float64
        if mode == "positive":
            s, r = qc, np.subtract(yc, qc, out=yc)  # the residual y − q, in place
        else:
            s, r = scores_and_residuals(yc, qc, mode)
        if plan is None:
            idx = np.asarray(np.searchsorted(edges[1:-1], s, side="right"), dtype=np.intp)
        else:
            idx = _uniform_index(s, edges, plan, tbuf[:k], ibuf[:k])
        wc = None if w is None else w[a : a + CHUNK]
        if wc is not None:
            r = r * wc
        rsum += _bin_sum(idx, r, m)
        if wsum is not None:
            wsum += _bin_sum(idx, wc, m)
        if ssum is not None:
            ssum += _bin_sum(idx, s if wc is None else s * wc, m)
    return wsum, rsum, ssum


def gap_norm(weight: FloatArray | None, resid_sum: FloatArray, norm: str, total: float) -> float:
    """ECE from per-bin weights W_b, residual sums R_b = W_b (ō_b − s̄_b) and W = Σ_b W_b.

    l1: Σ_b |R_b| / W;  l2: sqrt(Σ_b R_b² / W_b / W);  max: max over non-empty bins of |R_b| / W_b.
    """
    if norm == "l1":
        return float(np.abs(resid_sum).sum() / total)
    if weight is None:
        raise ValueError(f"norm={norm!r} needs the per-bin weights")
    full = weight > 0
    gaps = np.abs(resid_sum[full]) / weight[full]
    if norm == "l2":
        return float(np.sqrt(np.dot(gaps * gaps, weight[full]) / total))
    return float(gaps.max())

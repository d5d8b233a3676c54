"""Binning of calibration scores: edges, bin assignment and per-bin sums.

Bins are closed on the left and open on the right, ``[e_k, e_{k+1})``, except the last, which is
closed, ``[e_{M-1}, e_M]``: a probability of exactly 0 falls in the first bin and exactly 1 in the
last, each counted once (the convention of ``numpy.histogram`` and netcal).
"""

from __future__ import annotations

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


def assign_bins(scores: FloatArray, edges: FloatArray) -> IntArray:
    """Bin index of every score (left-closed bins, the last one closed).

    Equal-width edges (``linspace(0, 1, M + 1)``) take a fast path: ``floor(M s)`` corrected by
    one comparison with each neighbouring edge, which gives exactly ``searchsorted``'s answer.
    """
    m = edges.shape[0] - 1
    if (
        m > 1
        and edges[0] == 0.0
        and edges[-1] == 1.0
        and np.array_equal(edges, np.linspace(0.0, 1.0, m + 1))
    ):
        idx: IntArray = (scores * m).astype(np.intp)
        np.minimum(idx, m - 1, out=idx)
        idx -= scores < edges[idx]
        idx += (scores >= edges[idx + 1]) & (idx < m - 1)
        return idx
    return np.asarray(np.searchsorted(edges[1:-1], scores, side="right"), dtype=np.intp)


def binned_sums(
    y: FloatArray,
    q: FloatArray,
    w: FloatArray | None,
    edges: FloatArray,
    mode: str,
    *,
    weights: bool = True,
    scores: bool = False,
) -> tuple[FloatArray | None, FloatArray, FloatArray | None]:
    """Per-bin (total weight, weighted residual sum, weighted score sum) in one chunked pass.

    The weight and score sums are only computed when asked for (``None`` otherwise): the l1 ECE
    needs the residual sums alone.
    """
    m = edges.shape[0] - 1
    wsum = np.zeros(m) if weights else None
    rsum = np.zeros(m)
    ssum = np.zeros(m) if scores else None
    for a in range(0, q.shape[0], CHUNK):
        s, r = scores_and_residuals(y[a : a + CHUNK], q[a : a + CHUNK], mode)
        idx = assign_bins(s, edges)
        wc = None if w is None else w[a : a + CHUNK]
        if wc is not None:
            r = r * wc
        rsum += np.bincount(idx, weights=r, minlength=m)
        if wsum is not None:
            wsum += np.bincount(idx, weights=wc, minlength=m)
        if ssum is not None:
            ssum += np.bincount(idx, weights=s if wc is None else s * wc, minlength=m)
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

"""Mixing rules behind one interface: ``rule(vectors, f, pivot) -> vector``.

``vectors`` is one received set ``(m, d)`` or a batch of them ``(B, m, d)`` (one per node, in the
simulator); ``pivot`` is the index of the node's own vector in each set (used by NNA and by
self-centred clipping, ignored by the others); ``f`` is the declared number of faulty senders.
Every rule returns ``(d,)`` or ``(B, d)``. Official-code counterparts: ``aggregators/*.py`` of
LPD-EPFL/robust-collaborative-learning.
"""

from __future__ import annotations

from typing import Any

import torch

from monna.functional import _check_f, _check_pivot, nna_torch


class Aggregator:
    """Base class. Subclasses implement :meth:`_aggregate` on a batch ``(B, m, d)``."""

    name: str = "aggregator"
    #: whether the result depends on the pivot (the node's own vector)
    uses_pivot: bool = False
    #: whether ``2 f < m`` is required
    needs_majority: bool = True

    def __call__(self, vectors: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        if not isinstance(vectors, torch.Tensor):
            raise TypeError(f"vectors must be a torch.Tensor, got {type(vectors).__name__}")
        if vectors.ndim not in (2, 3) or vectors.shape[-2] == 0:
            raise ValueError(
                f"vectors must have shape (m, d) or (B, m, d) with m >= 1, got {tuple(vectors.shape)}"
            )
        m = vectors.shape[-2]
        if self.needs_majority:
            f = _check_f(f, m)
        elif not isinstance(f, int) or f < 0:
            raise ValueError(f"f must be a non-negative int, got {f!r}")
        pivot = _check_pivot(pivot, m)
        single = vectors.ndim == 2
        v = vectors.unsqueeze(0) if single else vectors
        out = self._aggregate(v, f, pivot)
        return out[0] if single else out

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        raise NotImplementedError

    def all_pivots(self, vectors: torch.Tensor, f: int, pivots: int) -> torch.Tensor:
        """``(pivots, d)``: the rule on one set ``(m, d)`` with each of pivots ``0..pivots-1``."""
        if not self.uses_pivot:
            return self(vectors, f, 0).unsqueeze(0).expand(pivots, -1)
        return torch.stack([self(vectors, f, i) for i in range(pivots)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Average(Aggregator):
    """Plain averaging (D-SGD's mixing): :math:`\\frac{1}{m} \\sum_j v_j`. No robustness."""

    name = "average"
    needs_majority = False

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        return v.mean(dim=1)


class NNA(Aggregator):
    """Nearest-neighbour averaging around the pivot (MoNNA's mixing); see :func:`monna.nna`."""

    name = "nna"
    uses_pivot = True

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        return nna_torch(v, f, pivot)

    def all_pivots(self, vectors: torch.Tensor, f: int, pivots: int) -> torch.Tensor:
        """NNA around each of the first ``pivots`` rows of one set, from one Gram matrix.

        :math:`\\lVert v_i - v_j \\rVert^2 = G_{ii} + G_{jj} - 2 G_{ij}` costs :math:`O(m^2 d)`
        once instead of :math:`O(\\text{pivots} \\cdot m d)` temporaries (used by the line search).
        """
        m = vectors.shape[0]
        f = _check_f(f, m)
        finite = torch.isfinite(vectors).all(dim=-1)
        v64 = torch.where(finite[:, None], vectors, torch.zeros_like(vectors)).double()
        gram = v64 @ v64.T
        sq = gram.diagonal()
        d2 = (sq[:pivots, None] + sq[None, :] - 2 * gram[:pivots]).clamp_min(0)
        d2[torch.arange(pivots), torch.arange(pivots)] = -1.0  # own vector always first
        d2 = torch.where(finite[None, :], d2, torch.full_like(d2, float("inf")))
        keep = torch.sort(d2, dim=-1, stable=True).indices[:, : m - f]
        if not bool(finite[keep].all()):
            raise ValueError(f"more than f={f} received vectors are non-finite")
        w = torch.zeros(pivots, m, dtype=vectors.dtype, device=vectors.device)
        w.scatter_(1, keep, 1.0 / (m - f))
        return w @ torch.where(finite[:, None], vectors, torch.zeros_like(vectors))


class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean: per coordinate, drop the ``f`` largest and ``f`` smallest."""

    name = "trimmed_mean"

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        s = torch.sort(v, dim=1).values
        return s[:, f : v.shape[1] - f].mean(dim=1)


class Median(Aggregator):
    """Coordinate-wise median (mean of the two middle values for even ``m``, as ``quantile(0.5)``)."""

    name = "median"
    needs_majority = False

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        s = torch.sort(v, dim=1).values
        m = v.shape[1]
        return (s[:, (m - 1) // 2] + s[:, m // 2]) / 2


class GeometricMedian(Aggregator):
    """Geometric median by the smoothed Weiszfeld algorithm (RFA), started at zero.

    .. math::

        z \\leftarrow \\frac{\\sum_j v_j / \\max(\\nu, \\lVert z - v_j \\rVert)}
                           {\\sum_j 1 / \\max(\\nu, \\lVert z - v_j \\rVert)}

    repeated ``iters`` times (official defaults ``nu=0.1``, ``T=3``). Non-finite rows get weight 0.
    """

    name = "geometric_median"
    needs_majority = False

    def __init__(self, nu: float = 0.1, iters: int = 3) -> None:
        if not nu > 0:
            raise ValueError(f"nu must be positive, got {nu!r}")
        if not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be a positive int, got {iters!r}")
        self.nu, self.iters = float(nu), iters

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        finite = torch.isfinite(v).all(dim=-1, keepdim=True)
        vv = torch.where(finite, v, torch.zeros_like(v))
        z = torch.zeros_like(v[:, 0])
        for _ in range(self.iters):
            dist = (vv - z[:, None]).norm(dim=-1, keepdim=True).clamp_min(self.nu)
            w = torch.where(finite, 1.0 / dist, torch.zeros_like(dist))
            z = (w * vv).sum(dim=1) / w.sum(dim=1)
        return z

    def __repr__(self) -> str:
        return f"GeometricMedian(nu={self.nu}, iters={self.iters})"


class Krum(Aggregator):
    """Krum: the vector with the smallest sum of squared distances to its ``m - f - 1`` nearest.

    Ties go to the lower index; non-finite rows never win. Cost :math:`O(m^2 d)` per call.
    """

    name = "krum"

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        m = v.shape[1]
        finite = torch.isfinite(v).all(dim=-1)
        v64 = torch.where(finite[..., None], v, torch.zeros_like(v)).double()
        d2 = torch.cdist(v64, v64).square()  # (B, m, m)
        d2 = torch.where(
            finite[:, None, :] & finite[:, :, None], d2, torch.full_like(d2, float("inf"))
        )
        d2.diagonal(dim1=1, dim2=2).fill_(float("inf"))  # exclude self
        k = m - f - 1
        scores = (
            torch.sort(d2, dim=-1).values[..., :k].sum(-1)
            if k > 0
            else torch.zeros_like(d2[..., 0])
        )
        scores = torch.where(finite, scores, torch.full_like(scores, float("inf")))
        best = torch.argmin(scores, dim=1)  # first minimum: lowest index
        return v[torch.arange(v.shape[0]), best]


class SelfCentredClipping(Aggregator):
    """Self-centred clipping (SCC / ClippedGossip on a complete graph), centred at the node's own vector.

    .. math::

        v \\leftarrow v + \\frac{1}{m} \\sum_j \\mathrm{clip}_\\tau(v_j - v), \\quad
        \\mathrm{clip}_\\tau(u) = u \\min(1, \\tau / \\lVert u \\rVert)

    started at ``v = vectors[pivot]`` and repeated ``iters`` times (official: ``L_iter=3``;
    ``tau`` 2 on MNIST, 5 on CIFAR). Non-finite rows contribute zero.
    """

    name = "scc"
    uses_pivot = True
    needs_majority = False

    def __init__(self, tau: float = 2.0, iters: int = 3) -> None:
        if not tau > 0:
            raise ValueError(f"tau must be positive, got {tau!r}")
        if not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be a positive int, got {iters!r}")
        self.tau, self.iters = float(tau), iters

    def _aggregate(self, v: torch.Tensor, f: int, pivot: int) -> torch.Tensor:
        finite = torch.isfinite(v).all(dim=-1, keepdim=True)
        vv = torch.where(finite, v, torch.zeros_like(v))
        c = v[:, pivot]
        for _ in range(self.iters):
            diff = vv - c[:, None]
            norm = diff.norm(dim=-1, keepdim=True)
            scale = torch.clamp(self.tau / norm.clamp_min(torch.finfo(norm.dtype).tiny), max=1.0)
            diff = torch.where(finite, diff * scale, torch.zeros_like(diff))
            c = c + diff.mean(dim=1)
        return c

    def __repr__(self) -> str:
        return f"SelfCentredClipping(tau={self.tau}, iters={self.iters})"


_RULES: dict[str, type[Aggregator]] = {
    "average": Average,
    "dsgd": Average,
    "nna": NNA,
    "monna": NNA,
    "trimmed_mean": TrimmedMean,
    "cwtm": TrimmedMean,
    "median": Median,
    "geometric_median": GeometricMedian,
    "rfa": GeometricMedian,
    "krum": Krum,
    "scc": SelfCentredClipping,
}

AGGREGATORS = tuple(sorted(_RULES))


def get_aggregator(rule: str | Aggregator, **kwargs: Any) -> Aggregator:
    """An aggregator by name (``average``, ``nna``, ``trimmed_mean``, ``median``,
    ``geometric_median``, ``krum``, ``scc``, and the aliases ``dsgd``, ``monna``, ``cwtm``, ``rfa``)
    or an :class:`Aggregator` instance passed through."""
    if isinstance(rule, Aggregator):
        if kwargs:
            raise TypeError(f"keyword arguments {sorted(kwargs)} given with an Aggregator instance")
        return rule
    if not isinstance(rule, str) or rule not in _RULES:
        raise ValueError(f"aggregator must be one of {AGGREGATORS} or an Aggregator, got {rule!r}")
    return _RULES[rule](**kwargs)


__all__ = [
    "AGGREGATORS",
    "NNA",
    "Aggregator",
    "Average",
    "GeometricMedian",
    "Krum",
    "Median",
    "SelfCentredClipping",
    "TrimmedMean",
    "get_aggregator",
]

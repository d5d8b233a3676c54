"""The randomised walk down stacked trees: exact expectation and vectorised Monte Carlo.

:func:`propagate` is the fast path used by the estimators; :func:`reference_predict_proba` is the
official code's per-sample Python loop, kept for parity tests and benchmarks. The flip rule and
the per-node constants are in :mod:`fair_ttts.functional`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fair_ttts.functional import Boost, CompiledForest

_CHUNK_ENTRIES = 1 << 19  # (sample, tree) pairs processed at once


def propagate(
    forest: CompiledForest,
    X: np.ndarray,
    params: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    method: Literal["exact", "monte_carlo"] = "exact",
    n_simulations: int = 100,
    rng: np.random.Generator | None = None,
    boost: Boost | None = None,
) -> np.ndarray:
    """Class probabilities of the randomised walk, averaged over trees: shape ``(n, n_classes)``.

    ``X`` must already hold the values scikit-learn compares (float32 values, as float64). With
    ``method="exact"`` the result is the expectation over walks (deterministic); with
    ``"monte_carlo"`` it is the mean leaf distribution of ``n_simulations`` random walks per sample
    and tree, drawn from ``rng``. All flip probabilities zero gives scikit-learn's ``predict_proba``.
    """
    if method not in ("exact", "monte_carlo"):
        raise ValueError(f"method must be 'exact' or 'monte_carlo', got {method!r}")
    if method == "monte_carlo":
        if rng is None:
            raise ValueError("monte_carlo needs a numpy Generator rng")
        if n_simulations < 1:
            raise ValueError(f"n_simulations must be >= 1, got {n_simulations!r}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    n = X.shape[0]
    out = np.zeros((n, forest.n_classes))
    tables = _Tables.build(forest, params)
    step = max(1, _CHUNK_ENTRIES // forest.n_trees)
    for start in range(0, n, step):
        stop = min(n, start + step)
        unpriv = None if boost is None else boost.unprivileged[start:stop]
        walk = _Walk(forest, tables, X[start:stop], rng, boost, unpriv)
        out[start:stop] = walk.run(method, n_simulations)
    return out


@dataclass(frozen=True)
class _Tables:
    """Node tables for one row gather per step. Leaves are absorbing: both children are the leaf,
    the threshold is +inf and p = 0, so a finished walk stays where it is."""

    itab: np.ndarray  # [feature, left, right, is_leaf]
    ftab: np.ndarray  # [threshold, a, b, c]
    a: np.ndarray
    static: bool  # p does not depend on x (fixed/depth/agreement)
    no_flip: bool  # every p is 0

    @classmethod
    def build(
        cls, forest: CompiledForest, params: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> _Tables:
        a, b, c = params
        internal = forest.is_internal
        ids = np.arange(forest.n_nodes, dtype=np.int64)
        itab = np.stack(
            [
                np.where(internal, forest.feature, 0),
                np.where(internal, forest.left, ids),
                np.where(internal, forest.right, ids),
                (~internal).astype(np.int64),
            ],
            axis=1,
        )
        ftab = np.stack([np.where(internal, forest.threshold, np.inf), a, b, c], axis=1)
        return cls(itab, ftab, a, not np.any(b[internal]), not np.any(a[internal] > 0))


class _Walk:
    """The walks of one chunk of rows: entries (row, node, mass) advanced one node per step.

    Exact mode carries float mass and splits it at every node with p > 0. Monte Carlo carries
    integer walk counts: an entry with k > 1 walks splits into Binomial(k, p) flipped walks and
    the rest; entries holding a single walk move to a leaner pool that draws one uniform per step.
    """

    def __init__(
        self,
        forest: CompiledForest,
        tables: _Tables,
        X: np.ndarray,
        rng: np.random.Generator | None,
        boost: Boost | None,
        unpriv: np.ndarray | None,
    ) -> None:
        self.forest, self.t, self.rng, self.boost, self.unpriv = forest, tables, rng, boost, unpriv
        self.n, self.n_features = X.shape
        self.flat = X.ravel()
        self.no_flip = tables.no_flip and boost is None
        self.done: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _finish(
        self, row: np.ndarray, node: np.ndarray, mass: np.ndarray, it: np.ndarray
    ) -> tuple[np.ndarray, ...] | None:
        """Move walks that reached a leaf out once they are a quarter of the pool; None when all are done."""
        leaf = it[:, 3].astype(bool)
        n_leaf = int(np.count_nonzero(leaf))
        if n_leaf == row.size:
            self.done.append((row, node, mass))
            return None
        if n_leaf > row.size // 4:
            self.done.append((row[leaf], node[leaf], mass[leaf]))
            inner = ~leaf
            return row[inner], node[inner], mass[inner], it[inner]
        return row, node, mass, it

    def _probabilities(
        self, row: np.ndarray, node: np.ndarray, it: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(go_left, natural child, flip probability) of each entry."""
        ft = self.t.ftab[node]
        x = self.flat[row * self.n_features + it[:, 0]]
        go_left = x <= ft[:, 0]
        natural = np.where(go_left, it[:, 1], it[:, 2])
        if self.t.static:
            p = ft[:, 1].copy()
        else:
            p = ft[:, 1] - ft[:, 2] * np.abs(x - ft[:, 3])
            np.clip(p, 0.0, 0.5, out=p)
        if self.boost is not None and self.unpriv is not None:
            hit = (self.boost.child[node] == natural) & self.unpriv[row]
            if hit.any():
                p[hit] = np.minimum(self.boost.alpha * p[hit], 0.5)
        return go_left, natural, p

    def run(self, method: str, n_simulations: int) -> np.ndarray:
        forest = self.forest
        n_trees = forest.n_trees
        exact = method == "exact"
        row = np.repeat(np.arange(self.n, dtype=np.int64), n_trees)
        node = np.tile(forest.roots, self.n)
        mass: np.ndarray = (
            np.ones(row.size) if exact else np.full(row.size, n_simulations, dtype=np.int64)
        )
        empty = np.zeros(0, dtype=np.int64)
        single: tuple[np.ndarray, np.ndarray] = (empty, empty)
        if not exact and n_simulations == 1:
            single, row, node, mass = (row, node), empty, empty, mass[:0]
        while row.size or single[0].size:
            if row.size:
                row, node, mass, moved = self._step_many(row, node, mass, exact)
                if moved[0].size:
                    single = (
                        np.concatenate([single[0], moved[0]]),
                        np.concatenate([single[1], moved[1]]),
                    )
            if single[0].size:
                single = self._step_single(*single)
        rows = np.concatenate([d[0] for d in self.done])
        nodes = np.concatenate([d[1] for d in self.done])
        weights = np.concatenate([d[2] for d in self.done]).astype(np.float64)
        out = np.empty((self.n, forest.n_classes))
        for k in range(forest.n_classes):
            out[:, k] = np.bincount(
                rows, weights=weights * forest.value[nodes, k], minlength=self.n
            )
        return out / (n_trees * (1.0 if exact else float(n_simulations)))

    def _step_single(self, row: np.ndarray, node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it = self.t.itab[node]
        kept = self._finish(row, node, np.ones(row.size, dtype=np.int64), it)
        if kept is None:
            return row[:0], node[:0]
        row, node, _, it = kept
        go_left, _, p = self._probabilities(row, node, it)
        assert self.rng is not None
        flip = self.rng.random(row.size) < p
        return row, np.where(go_left != flip, it[:, 1], it[:, 2])

    def _step_many(
        self, row: np.ndarray, node: np.ndarray, mass: np.ndarray, exact: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        empty = (row[:0], row[:0])
        kept = self._finish(row, node, mass, self.t.itab[node])
        if kept is None:
            return row[:0], node[:0], mass[:0], empty
        row, node, mass, it = kept
        if self.no_flip:
            return (
                row,
                np.where(
                    self.flat[row * self.n_features + it[:, 0]] <= self.t.ftab[node, 0],
                    it[:, 1],
                    it[:, 2],
                ),
                mass,
                empty,
            )
        _, natural, p = self._probabilities(row, node, it)
        fl = np.flatnonzero(p > 0)
        if fl.size == 0:
            return row, natural, mass, empty
        other = it[fl, 1] + it[fl, 2] - natural[fl]
        pf = p[fl]
        if exact:
            moved = mass[fl] * pf
            mass = mass.copy()
            mass[fl] -= moved
            return (
                np.concatenate([row, row[fl]]),
                np.concatenate([natural, other]),
                np.concatenate([mass, moved]),
                empty,
            )
        assert self.rng is not None
        k_flip = self.rng.binomial(mass[fl], pf)
        whole = k_flip == mass[fl]  # every walk of the entry flipped: move it in place
        node = natural
        node[fl[whole]] = other[whole]
        part = np.flatnonzero((k_flip > 0) & ~whole)
        if part.size:
            src = fl[part]
            mass = mass.copy()
            mass[src] -= k_flip[part]
            row = np.concatenate([row, row[src]])
            node = np.concatenate([node, other[part]])
            mass = np.concatenate([mass, k_flip[part]])
        one = mass == 1
        if not one.any():
            return row, node, mass, empty
        many = ~one
        return row[many], node[many], mass[many], (row[one], node[one])


def reference_predict_proba(
    forest: CompiledForest,
    X: np.ndarray,
    params: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    n_simulations: int,
    rng: Any,
    boost: Boost | None = None,
) -> np.ndarray:
    """The official per-sample loop: for each sample, tree and simulation, walk down the tree
    drawing one uniform ``rng.random()`` per internal node and flipping iff ``u <= p``.

    Slow (pure Python); use it for parity checks and as the benchmark baseline. With
    ``rng = np.random.RandomState(seed)`` it consumes the same stream as the official scripts'
    ``np.random.rand()`` after ``np.random.seed(seed)``.
    """
    a, b, c = (arr.tolist() for arr in params)
    left, right = forest.left.tolist(), forest.right.tolist()
    feature, threshold = forest.feature.tolist(), forest.threshold.tolist()
    value = forest.value
    child = None if boost is None else boost.child.tolist()
    n_trees = forest.n_trees
    out = np.zeros((X.shape[0], forest.n_classes))
    for i, x in enumerate(np.asarray(X, dtype=np.float64).tolist()):
        unpriv = boost is not None and bool(boost.unprivileged[i])
        total = np.zeros(forest.n_classes)
        for root in forest.roots.tolist():
            for _ in range(n_simulations):
                v = root
                while left[v] >= 0:
                    xv = x[feature[v]]
                    go_left = xv <= threshold[v]
                    nat = left[v] if go_left else right[v]
                    p = min(max(a[v] - b[v] * abs(xv - c[v]), 0.0), 0.5)
                    if unpriv and child is not None and child[v] == nat:
                        p = min(boost.alpha * p, 0.5)  # type: ignore[union-attr]
                    flipped = right[v] if go_left else left[v]
                    v = nat if rng.random() > p else flipped  # the official test: flip iff u <= p
                total += value[v]
        out[i] = total / (n_trees * n_simulations)
    return out

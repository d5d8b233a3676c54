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
    if forest.sklearn_trees and not np.any(params[0][forest.is_internal] > 0):
        # Every p is 0 (the boost multiplies p, so it cannot make it positive): the walk is
        # scikit-learn's deterministic one, so let its compiled ``apply`` do the traversal. The
        # random stream is not needed (a Monte Carlo walk never flips).
        return _natural_leaves_proba(forest, X)
    tables = _Tables.build(forest, params)
    n = X.shape[0]
    out = np.zeros((n, forest.n_classes))
    step = max(1, _CHUNK_ENTRIES // forest.n_trees)
    for start in range(0, n, step):
        stop = min(n, start + step)
        unpriv = None if boost is None else boost.unprivileged[start:stop]
        walk = _Walk(forest, tables, X[start:stop], rng, boost, unpriv)
        out[start:stop] = walk.run(method, n_simulations)
    return out


def _natural_leaves_proba(forest: CompiledForest, X: np.ndarray) -> np.ndarray:
    """Mean leaf distribution of the deterministic walks, traversed by scikit-learn's ``Tree.apply``."""
    X32 = np.ascontiguousarray(X, dtype=np.float32)  # exact: X holds float32 values
    out = np.zeros((X.shape[0], forest.n_classes))
    for root, tree in zip(forest.roots.tolist(), forest.sklearn_trees):
        out += forest.value[tree.apply(X32) + root]
    out /= forest.n_trees
    return out


@dataclass(frozen=True)
class _Tables:
    """Per-node arrays, one gather each per step. Leaves are absorbing: both children are the
    leaf itself, the threshold is +inf and p = 0, so a finished walk stays where it is."""

    feature: np.ndarray  # 0 at leaves
    threshold: np.ndarray  # +inf at leaves
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray  # bool
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    static: bool  # p does not depend on x (fixed/depth/agreement)

    @classmethod
    def build(
        cls, forest: CompiledForest, params: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> _Tables:
        a, b, c = (np.ascontiguousarray(v, dtype=np.float64) for v in params)
        internal = forest.is_internal
        ids = np.arange(forest.n_nodes, dtype=np.int64)
        return cls(
            feature=np.where(internal, forest.feature, 0),
            threshold=np.where(internal, forest.threshold, np.inf),
            left=np.where(internal, forest.left, ids),
            right=np.where(internal, forest.right, ids),
            leaf=~internal,
            a=a,
            b=b,
            c=c,
            static=not np.any(b[internal]),
        )


class _Walk:
    """The walks of one chunk of rows, as entries (row offset, node, mass) advanced one node per step.

    Exact mode carries float mass and splits it at every node with p > 0. Monte Carlo carries
    integer walk counts: an entry with k > 1 walks splits into Binomial(k, p) flipped walks and
    the rest; entries holding a single walk move to a leaner pool that draws one uniform per step.
    Rows are stored as offsets ``row * n_features`` into the flattened ``X``.

    The order of the entries and the sizes of the random draws are part of the Monte Carlo
    result for a given seed: the multi-walk pool keeps its entries in order (new flipped entries
    at the end) and the single-walk pool moves finished walks out with a fixed rule (once they are
    more than a quarter of it), drawing one uniform for every walk it still holds.
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
        self.acc = np.zeros((forest.n_classes, self.n))  # summed leaf distributions per class

    def _probabilities(
        self, off: np.ndarray, node: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(go_left, left child, right child, flip probability) of each entry."""
        t = self.t
        x = self.flat[off + t.feature[node]]
        go_left = x <= t.threshold[node]
        if t.static:
            p = t.a[node]
        else:
            p = t.b[node]
            p *= np.abs(x - t.c[node])
            np.subtract(t.a[node], p, out=p)
            np.clip(p, 0.0, 0.5, out=p)
        left, right = t.left[node], t.right[node]
        if self.boost is not None and self.unpriv is not None:
            boost_child = self.boost.child[node]
            hit = (boost_child == np.where(go_left, left, right)) & self.unpriv[
                off // self.n_features
            ]
            if hit.any():
                p[hit] = np.minimum(self.boost.alpha * p[hit], 0.5)
        return go_left, left, right, p

    def run(self, method: str, n_simulations: int) -> np.ndarray:
        forest = self.forest
        n_trees = forest.n_trees
        exact = method == "exact"
        off = np.repeat(np.arange(self.n, dtype=np.int64) * self.n_features, n_trees)
        node = np.tile(forest.roots, self.n)
        if exact:
            self._run_exact(off, node)
        else:
            self._run_monte_carlo(off, node, n_simulations)
        out: np.ndarray = self.acc.T / (n_trees * (1.0 if exact else float(n_simulations)))
        return out

    def _finish(self, off: np.ndarray, node: np.ndarray, mass: np.ndarray | None) -> None:
        """Add the leaf distributions of finished entries (``mass`` walks or mass each, else one)."""
        rows = off // self.n_features
        value = self.forest.value
        for k in range(value.shape[1]):
            w = value[node, k]
            if mass is not None:
                w *= mass
            self.acc[k] += np.bincount(rows, weights=w, minlength=self.n)

    def _retire_leaves(
        self, off: np.ndarray, node: np.ndarray, mass: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add up the entries that sit at a leaf; return the others, in order."""
        leaf = self.t.leaf[node]
        if not leaf.any():
            return off, node, mass
        self._finish(off[leaf], node[leaf], mass[leaf])
        inner = ~leaf
        return off[inner], node[inner], mass[inner]

    def _run_exact(self, off: np.ndarray, node: np.ndarray) -> None:
        mass = np.ones(off.size)
        off, node, mass = self._retire_leaves(off, node, mass)
        while off.size:
            go_left, left, right, p = self._probabilities(off, node)
            natural = np.where(go_left, left, right)
            fl = np.flatnonzero(p > 0)
            if fl.size:
                other = np.where(go_left[fl], right[fl], left[fl])
                moved = mass[fl] * p[fl]
                mass[fl] -= moved
                off = np.concatenate([off, off[fl]])
                natural = np.concatenate([natural, other])
                mass = np.concatenate([mass, moved])
            off, node, mass = self._retire_leaves(off, natural, mass)

    def _run_monte_carlo(self, off: np.ndarray, node: np.ndarray, n_simulations: int) -> None:
        empty = off[:0]
        mass = np.full(off.size, n_simulations, dtype=np.int64)
        single: tuple[np.ndarray, np.ndarray] = (empty, empty)
        if n_simulations == 1:
            single, off, node, mass = (off, node), empty, empty, mass[:0]
        else:
            off, node, mass = self._retire_leaves(off, node, mass)
        while off.size or single[0].size:
            if off.size:
                off, node, mass, moved = self._step_many(off, node, mass)
                if moved[0].size:
                    single = (
                        np.concatenate([single[0], moved[0]]),
                        np.concatenate([single[1], moved[1]]),
                    )
            if single[0].size:
                single = self._step_single(*single)

    def _step_single(self, off: np.ndarray, node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        leaf = self.t.leaf[node]
        n_leaf = int(np.count_nonzero(leaf))
        if n_leaf == off.size:
            self._finish(off, node, None)
            return off[:0], node[:0]
        if n_leaf > off.size // 4:
            self._finish(off[leaf], node[leaf], None)
            inner = ~leaf
            off, node = off[inner], node[inner]
        go_left, left, right, p = self._probabilities(off, node)
        assert self.rng is not None
        flip = self.rng.random(off.size) < p
        return off, np.where(go_left != flip, left, right)

    def _step_many(
        self, off: np.ndarray, node: np.ndarray, mass: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """One step of the entries holding k > 1 walks (none of them at a leaf). Entries left with
        one walk are returned separately, in order, leaves included (the single pool retires them)."""
        go_left, left, right, p = self._probabilities(off, node)
        node = np.where(go_left, left, right)
        new: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        new_one: list[tuple[np.ndarray, np.ndarray]] = []
        pos = p > 0
        n_pos = int(np.count_nonzero(pos))
        if n_pos:
            assert self.rng is not None
            # dense rules (every entry may flip) skip the index arrays
            fl = slice(None) if n_pos == off.size else np.flatnonzero(pos)
            m_fl = mass[fl]
            k_flip = self.rng.binomial(m_fl, p[fl])
            other = np.where(go_left[fl], right[fl], left[fl])
            whole = k_flip == m_fl  # every walk of the entry flipped: move it in place
            part = np.flatnonzero((k_flip > 0) & ~whole)
            if isinstance(fl, slice):
                np.copyto(node, other, where=whole)
                src = part
            else:
                node[fl[whole]] = other[whole]
                src = fl[part]
            if part.size:
                mass[src] -= k_flip[part]  # the pool owns its arrays
                self._sort_out(off[src], other[part], k_flip[part], new, new_one)
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        ones: list[tuple[np.ndarray, np.ndarray]] = []
        self._sort_out(off, node, mass, kept, ones)
        off, node, mass = _concat(kept + new)
        ones += new_one
        if not ones:
            return off, node, mass, (off[:0], node[:0])
        return off, node, mass, (_cat([e[0] for e in ones]), _cat([e[1] for e in ones]))

    def _sort_out(
        self,
        off: np.ndarray,
        node: np.ndarray,
        mass: np.ndarray,
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        ones: list[tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Entries with one walk go to ``ones`` (leaves included), other finished ones are added up,
        the rest to ``kept``; each list keeps the entries' order."""
        one = mass == 1
        stay = ~(one | self.t.leaf[node])
        if stay.all():
            kept.append((off, node, mass))
            return
        kept.append((off[stay], node[stay], mass[stay]))
        if one.any():
            ones.append((off[one], node[one]))
        fin = ~(one | stay)
        if fin.any():
            self._finish(off[fin], node[fin], mass[fin])


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _concat(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _cat([e[0] for e in parts]), _cat([e[1] for e in parts]), _cat([e[2] for e in parts])


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

"""TTTS / FairTTTS as plain functions on tree arrays (numpy only, no hidden state).

TTTS (Cohen, Arbili, Mirsky & Rokach, AAAI 2024) replaces the deterministic walk down a decision
tree by a random one: at internal node :math:`v` (feature :math:`f_v`, threshold :math:`t_v`) a
sample :math:`x` takes its *natural* child (left iff :math:`x_{f_v} \\le t_v`) with probability
:math:`1 - p_v(x)` and the other child with probability :math:`p_v(x)`. The prediction is the
average leaf class distribution over :math:`S` simulated walks (and over the trees of a forest).

Every heuristic of the paper and the official code is one affine-in-distance rule

.. math::

    p_v(x) = \\operatorname{clip}\\bigl(a_v - b_v\\,|x_{f_v} - c_v|,\\ 0,\\ \\tfrac12\\bigr)

with per-node constants :math:`(a_v, b_v, c_v)` built by :func:`flip_parameters`.

FairTTTS (Cohen-Inger, Rokach, Shapira & Cohen, 2025) adds a *fairness boost*: at a node that
splits on the protected attribute :math:`A`, for a sample of the unprivileged group whose natural
child is the "more negative" child (the child with the larger unfavourable-class rate),

.. math::

    p_v(x) \\leftarrow \\min(\\alpha\\, p_v(x),\\ \\tfrac12).

:func:`~fair_ttts.walk.propagate` computes the forest's class probabilities either *exactly* (the
:math:`S \\to \\infty` limit: probability mass is pushed down both children of every node with
:math:`p_v > 0`) or by Monte Carlo with :math:`S` walks per sample and tree. The Monte Carlo walks
are simulated as *counts*: the :math:`k` walks of one sample that sit at node :math:`v` split into
:math:`\\mathrm{Binomial}(k, p_v)` flipped and :math:`k - \\mathrm{Binomial}(k, p_v)` natural
walks. Walks are independent given the node, so this has exactly the distribution of :math:`S`
separate walks, at the cost of the exact method rather than :math:`S` times it.

:func:`reference_predict_proba` is the official code's per-sample Python loop (one uniform draw
per visited node, flip iff :math:`u \\le p`), kept for parity tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.tree._tree import Tree

Heuristic = Literal["distance", "fixed", "depth", "agreement", "confidence"]
HEURISTICS: tuple[str, ...] = ("distance", "fixed", "depth", "agreement", "confidence")

#: default ``p_max`` per heuristic, as in the FairTTTS official scripts (``fixed`` is the fixed p,
#: ``depth`` is the cap of ``depth_rate * depth``).
DEFAULT_P_MAX: dict[str, float] = {
    "distance": 0.1,
    "fixed": 0.2,
    "depth": 0.2,
    "agreement": 0.5,
    "confidence": 0.1,
}


@dataclass(frozen=True)
class CompiledForest:
    """The trees of a fitted scikit-learn tree or forest, stacked into one node table.

    Node ids are global (tree ``k``'s nodes follow tree ``k - 1``'s). ``left``/``right`` are ``-1``
    at leaves, ``feature`` is ``-2`` at leaves. ``value`` holds each node's class distribution
    normalised to sum to one (the leaf rows are what scikit-learn's ``predict_proba`` averages);
    ``weight`` is the node's weighted training sample count. ``sklearn_trees`` keeps the
    scikit-learn ``Tree`` objects the table was built from (empty when they are not scikit-learn
    trees): :func:`~fair_ttts.walk.propagate` lets their compiled ``apply`` do the walk when no
    node can flip.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    weight: np.ndarray
    depth: np.ndarray
    tree: np.ndarray
    roots: np.ndarray
    sklearn_trees: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @property
    def n_trees(self) -> int:
        return int(self.roots.size)

    @property
    def n_nodes(self) -> int:
        return int(self.left.size)

    @property
    def n_classes(self) -> int:
        return int(self.value.shape[1])

    @property
    def is_internal(self) -> np.ndarray:
        return self.left >= 0  # type: ignore[no-any-return]


def compile_trees(trees: Sequence[Any]) -> CompiledForest:
    """Stack scikit-learn ``Tree`` objects (``estimator.tree_``) into a :class:`CompiledForest`.

    Each tree must be single-output; the value rows are normalised per node, so the result is the
    same on scikit-learn versions that store counts (< 1.4) and fractions (>= 1.4).
    """
    if len(trees) == 0:
        raise ValueError("trees must not be empty")
    lefts, rights, feats, thrs, vals, weights, depths, tree_ids, roots = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    offset = 0
    for k, t in enumerate(trees):
        value = np.asarray(t.value, dtype=np.float64)
        if value.ndim != 3 or value.shape[1] != 1:
            raise ValueError(
                f"only single-output trees are supported, tree {k} has value shape {value.shape}"
            )
        left = np.asarray(t.children_left, dtype=np.int64)
        right = np.asarray(t.children_right, dtype=np.int64)
        n = left.size
        internal = left >= 0
        lefts.append(np.where(internal, left + offset, -1))
        rights.append(np.where(internal, right + offset, -1))
        feats.append(np.where(internal, np.asarray(t.feature, dtype=np.int64), -2))
        thrs.append(np.where(internal, np.asarray(t.threshold, dtype=np.float64), 0.0))
        v = value[:, 0, :]
        total = v.sum(axis=1, keepdims=True)
        vals.append(np.divide(v, total, out=np.zeros_like(v), where=total > 0))
        weights.append(np.asarray(t.weighted_n_node_samples, dtype=np.float64))
        depths.append(_node_depths(left, right))
        tree_ids.append(np.full(n, k, dtype=np.int64))
        roots.append(offset)
        offset += n
    return CompiledForest(
        left=np.concatenate(lefts),
        right=np.concatenate(rights),
        feature=np.concatenate(feats),
        threshold=np.concatenate(thrs),
        value=np.concatenate(vals),
        weight=np.concatenate(weights),
        depth=np.concatenate(depths),
        tree=np.concatenate(tree_ids),
        roots=np.asarray(roots, dtype=np.int64),
        sklearn_trees=tuple(trees) if all(isinstance(t, Tree) for t in trees) else (),
    )


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    depth = np.zeros(left.size, dtype=np.int64)
    frontier = np.zeros(1, dtype=np.int64)
    d = 0
    while frontier.size:
        depth[frontier] = d
        inner = frontier[left[frontier] >= 0]
        frontier = np.concatenate([left[inner], right[inner]])
        d += 1
    return depth


def flip_parameters(
    forest: CompiledForest,
    heuristic: str,
    *,
    p_max: float,
    depth_rate: float = 0.05,
    widths: np.ndarray | None = None,
    center: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-node constants ``(a, b, c)`` of :math:`p_v(x) = \\mathrm{clip}(a_v - b_v|x_{f_v} - c_v|, 0, 1/2)`.

    Heuristics (TTTS paper, Sec. 3; constants of the FairTTTS official code):

    - ``distance``: :math:`p = p_{max}\\max(0, 1 - |x_f - t_v| / w_v)`, i.e. :math:`a = p_{max}`,
      :math:`b = p_{max}/w_v`, :math:`c = t_v`. ``widths`` gives :math:`w_v` per node (the distance
      at which p reaches zero). The official rule :math:`p = \\max(p_{max} - |x_f - t|/D, 0)` with
      :math:`D = \\max_v |t_v|` of the tree is :math:`w_v = p_{max} D`.
    - ``fixed``: :math:`p = p_{max}`.
    - ``depth``: :math:`p = \\min(r\\,\\mathrm{depth}(v), p_{max})` with ``depth_rate`` r.
    - ``agreement``: :math:`p = \\min(1 - \\max_k \\pi_{v,k}, p_{max})`, the node's class
      disagreement (the official code's ``certainty`` is the same formula).
    - ``confidence``: :math:`p = \\max(p_{max} - |x_f - \\mu_f|/\\sigma_f, 0)` with the feature's
      training mean and standard deviation (``center``, ``spread`` per feature).
    """
    if heuristic not in HEURISTICS:
        raise ValueError(f"heuristic must be one of {HEURISTICS}, got {heuristic!r}")
    n = forest.n_nodes
    internal = forest.is_internal
    a = np.zeros(n)
    b = np.zeros(n)
    c = np.zeros(n)
    feat = np.where(internal, forest.feature, 0)
    if heuristic == "distance":
        if widths is None or widths.shape != (n,):
            raise ValueError("the distance heuristic needs one width per node")
        if np.any(~(widths[internal] > 0)) or not np.all(np.isfinite(widths[internal])):
            raise ValueError("distance widths must be finite and positive at every internal node")
        a[:] = p_max
        b[internal] = p_max / widths[internal]
        c[:] = forest.threshold
    elif heuristic == "fixed":
        a[:] = p_max
    elif heuristic == "depth":
        a[:] = np.minimum(depth_rate * forest.depth, p_max)
    elif heuristic == "agreement":
        a[:] = np.minimum(1.0 - forest.value.max(axis=1), p_max)
    else:  # confidence
        if center is None or spread is None:
            raise ValueError("the confidence heuristic needs per-feature center and spread")
        a[:] = p_max
        b[:] = 1.0 / spread[feat]
        c[:] = center[feat]
    for arr in (a, b, c):
        arr[~internal] = 0.0
    return a, b, c


def more_negative_child(
    forest: CompiledForest, favorable_index: int, *, by: str = "rate"
) -> np.ndarray:
    """For each internal node, the child with the larger unfavourable-outcome share (``-1`` at leaves).

    The unfavourable share of a node is :math:`1 - \\pi_{v,\\mathrm{fav}}` (``by="rate"``, what the
    official code compares on scikit-learn >= 1.4) or that rate times the node's weighted sample
    count (``by="count"``, what it compares on scikit-learn < 1.4). Ties go left, as in the
    official code.
    """
    if by not in ("rate", "count"):
        raise ValueError(f"by must be 'rate' or 'count', got {by!r}")
    internal = forest.is_internal
    unfav = 1.0 - forest.value[:, favorable_index]
    if by == "count":
        unfav = unfav * forest.weight
    left = np.where(internal, forest.left, 0)
    right = np.where(internal, forest.right, 0)
    child = np.where(unfav[right] > unfav[left], right, left)
    return np.where(internal, child, -1)


@dataclass(frozen=True)
class Boost:
    """The FairTTTS boost: ``child[v]`` is the node's more-negative child where ``v`` splits on the
    protected attribute (``-1`` elsewhere), ``unprivileged[i]`` marks the rows of the unprivileged
    group, and ``alpha`` multiplies the flip probability there (capped at 1/2)."""

    alpha: float
    child: np.ndarray
    unprivileged: np.ndarray


# the walk itself lives in fair_ttts.walk (it needs the types above)
from fair_ttts.walk import propagate, reference_predict_proba  # noqa: E402

__all__ = [
    "DEFAULT_P_MAX",
    "HEURISTICS",
    "Boost",
    "CompiledForest",
    "compile_trees",
    "flip_parameters",
    "more_negative_child",
    "propagate",
    "reference_predict_proba",
]

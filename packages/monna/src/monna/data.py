"""Heterogeneous node shards and the small digits problem used by the demo, the tests and torchrun.

Two Dirichlet splits:

- :func:`papershelf.data.dirichlet_split` (re-exported as :func:`dirichlet_split`): per class,
  proportions over nodes from :math:`\\mathrm{Dir}(\\alpha)`; the shards *partition* the data.
- :func:`dirichlet_split_official`: the official code's rule. Each node gets :math:`N // H`
  samples: it draws class proportions :math:`p \\sim \\mathrm{Dir}(\\alpha 1_K)` and takes
  :math:`\\lfloor (N // H) p_k \\rfloor` samples of class :math:`k` without replacement *within the
  node*, from the whole class, so **different nodes may share samples**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from papershelf.data import dirichlet_split, gaussian_mixture, load_split
from papershelf.devices import numpy_rng


def dirichlet_split_official(
    y: np.ndarray, n_nodes: int, *, alpha: float, seed: int | np.random.Generator | None = 0
) -> list[np.ndarray]:
    """The official per-node Dirichlet draw (nodes may share samples); see the module docstring."""
    if not isinstance(n_nodes, int) or n_nodes < 1:
        raise ValueError(f"n_nodes must be a positive int, got {n_nodes!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    y = np.asarray(y)
    rng = numpy_rng(seed)
    classes = np.unique(y)
    buckets = [np.flatnonzero(y == c) for c in classes]
    per_node = y.size // n_nodes
    out = []
    for _ in range(n_nodes):
        p = rng.dirichlet(np.full(classes.size, alpha))
        counts = np.floor(per_node * p).astype(int)
        parts = [
            rng.choice(b, size=min(c, b.size), replace=False) for b, c in zip(buckets, counts) if c
        ]
        shard = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        if shard.size == 0:  # every proportion rounded to zero: give the node its top class
            shard = rng.choice(buckets[int(np.argmax(p))], size=1)
        out.append(shard.astype(np.int64))
    return out


@dataclass
class Problem:
    """A training problem: a model (``x^0``), data, one shard per honest node, test data."""

    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    shards: list[np.ndarray]
    X_test: torch.Tensor
    y_test: torch.Tensor


def digits_problem(
    honest: int,
    *,
    alpha: float = 1.0,
    hidden: int = 32,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    split: str = "papershelf",
) -> Problem:
    """scikit-learn's digits (standardised), a 64-``hidden``-10 MLP (``hidden=0``: linear), and
    Dirichlet(``alpha``) shards over ``honest`` nodes (``split="official"`` for the official draw).

    Training uses the train and validation parts of :func:`papershelf.data.load_split`."""
    s = load_split("digits", seed=seed)
    X = np.concatenate([s.X_train, s.X_val])
    y = np.concatenate([s.y_train, s.y_val])
    if split == "papershelf":
        shards = dirichlet_split(y, honest, alpha=alpha, min_size=2, seed=seed)
    elif split == "official":
        shards = dirichlet_split_official(y, honest, alpha=alpha, seed=seed)
    else:
        raise ValueError(f"split must be 'papershelf' or 'official', got {split!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = (
            [nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
            if hidden
            else [nn.Linear(64, 10)]
        )
        model = nn.Sequential(*layers).to(dtype)
    return Problem(
        model,
        torch.as_tensor(X, dtype=dtype),
        torch.as_tensor(y),
        shards,
        torch.as_tensor(s.X_test, dtype=dtype),
        torch.as_tensor(s.y_test),
    )


def blobs_problem(
    honest: int,
    *,
    alpha: float = 1.0,
    hidden: int = 16,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    n_samples: int = 1200,
    n_classes: int = 4,
    n_features: int = 8,
) -> Problem:
    """A numpy-only problem (no scikit-learn): a Gaussian mixture from
    :func:`papershelf.data.gaussian_mixture`, the last sixth held out for testing, Dirichlet shards."""
    X, y, _ = gaussian_mixture(
        n_samples, n_components=n_classes, n_features=n_features, separation=3.0, seed=seed
    )
    cut = n_samples - n_samples // 6
    shards = dirichlet_split(y[:cut], honest, alpha=alpha, min_size=2, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = (
            [nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)]
            if hidden
            else [nn.Linear(n_features, n_classes)]
        )
        model = nn.Sequential(*layers).to(dtype)
    return Problem(
        model,
        torch.as_tensor(X[:cut], dtype=dtype),
        torch.as_tensor(y[:cut]),
        shards,
        torch.as_tensor(X[cut:], dtype=dtype),
        torch.as_tensor(y[cut:]),
    )


__all__ = [
    "Problem",
    "blobs_problem",
    "digits_problem",
    "dirichlet_split",
    "dirichlet_split_official",
]

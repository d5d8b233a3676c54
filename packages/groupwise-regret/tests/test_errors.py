"""Every bad input raises a ValueError/TypeError naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest
from groupwise_regret import (
    GroupwiseRegressor,
    OnlineGradientDescent,
    OnlineRidge,
    PartialFitLearner,
    groupwise_regret,
)


@pytest.fixture
def fitted(rng: np.random.Generator) -> GroupwiseRegressor:
    return GroupwiseRegressor(groups=["a", "b"]).fit(
        rng.uniform(size=(20, 3)), rng.uniform(size=20), rng.random((20, 2)) < 0.5
    )


def test_feature_dimension_mismatch(fitted: GroupwiseRegressor) -> None:
    with pytest.raises(ValueError, match="X has 4 features, but the estimator was fitted with 3"):
        fitted.partial_fit(np.zeros((2, 4)), np.zeros(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="X has 4 features"):
        fitted.predict(np.zeros((2, 4)), np.ones((2, 2)))


def test_nan_inputs(fitted: GroupwiseRegressor) -> None:
    X = np.zeros((3, 3))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite; found NaN or inf at rows \[1\]"):
        fitted.partial_fit(X, np.zeros(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match="y must be finite"):
        fitted.partial_fit(np.zeros((3, 3)), np.array([0.0, np.nan, 0.0]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="x must be finite"):
        OnlineRidge().learn_one(np.array([np.inf, 0.0]), 0.0)


def test_membership_wrong_shape_or_values(fitted: GroupwiseRegressor) -> None:
    with pytest.raises(
        ValueError, match=r"membership matrix of shape \(2, 2\), got shape \(2, 3\)"
    ):
        fitted.partial_fit(np.zeros((2, 3)), np.zeros(2), np.ones((2, 3)))
    with pytest.raises(
        ValueError, match=r"membership matrix of shape \(2, 2\), got shape \(3, 2\)"
    ):
        fitted.partial_fit(np.zeros((2, 3)), np.zeros(2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="only 0/1"):
        fitted.partial_fit(np.zeros((2, 3)), np.zeros(2), np.full((2, 2), 2))
    with pytest.raises(ValueError, match="groups= is required"):
        fitted.partial_fit(np.zeros((2, 3)), np.zeros(2))


def test_unknown_group_name(fitted: GroupwiseRegressor) -> None:
    with pytest.raises(ValueError, match="unknown group name 'c'; known groups: \\['a', 'b'\\]"):
        fitted.learn_one(np.zeros(3), 0.5, groups={"a", "c"})
    with pytest.raises(ValueError, match="reserved"):
        GroupwiseRegressor(groups=["always_on"]).fit(np.zeros((2, 3)), np.zeros(2), np.ones((2, 1)))


def test_bad_predicates(rng: np.random.Generator) -> None:
    X = rng.uniform(size=(5, 2))
    with pytest.raises(ValueError, match=r"predicate 'big' must return shape \(5,\)"):
        GroupwiseRegressor(groups={"big": lambda X: X > 0.5}).fit(X, np.zeros(5))
    with pytest.raises(TypeError, match="groups\\['f'\\] must be a callable"):
        GroupwiseRegressor(groups={"f": 3}).fit(X, np.zeros(5))  # type: ignore[dict-item]
    with pytest.raises(
        ValueError, match="must be None when the estimator was built with named predicates"
    ):
        GroupwiseRegressor(groups={"f": lambda X: X[:, 0] > 0}).fit(X, np.zeros(5), np.ones((5, 1)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "hinge"}, "loss must be one of"),
        ({"y_range": (1.0, 0.0)}, "y_range must be finite with low < high"),
        ({"y_range": "ab"}, "y_range must be finite with low < high|y_range must be a pair"),
        ({"prediction": "vote"}, "prediction must be 'mean' or 'sample', got 'vote'"),
        ({"proba_eps": 0.7}, "proba_eps must be in"),
        ({"always_on": 1}, "always_on must be a bool"),
    ],
)
def test_bad_params(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        GroupwiseRegressor(**kwargs).fit(np.zeros((2, 2)), np.zeros(2))  # type: ignore[arg-type]


def test_labels_out_of_range_and_not_binary() -> None:
    with pytest.raises(ValueError, match=r"y must lie in y_range=\(0.0, 1.0\) when clip=True"):
        GroupwiseRegressor().fit(np.zeros((2, 2)), np.array([0.5, 3.0]))
    with pytest.raises(ValueError, match="0/1 labels"):
        GroupwiseRegressor(OnlineGradientDescent(loss="logistic"), loss="logistic").fit(
            np.zeros((2, 2)), np.array([0.5, 1])
        )
    with pytest.raises(ValueError, match="needs loss='logistic'"):
        GroupwiseRegressor(OnlineGradientDescent(loss="logistic")).fit(
            np.zeros((2, 2)), np.zeros(2)
        )


def test_learner_errors() -> None:
    with pytest.raises(ValueError, match="alpha must be a positive finite number, got 0"):
        OnlineRidge(alpha=0)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        OnlineGradientDescent(lr=-1)
    with pytest.raises(ValueError, match="schedule must be"):
        OnlineGradientDescent(schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must have a partial_fit method"):
        PartialFitLearner(object())
    with pytest.raises(TypeError, match="learner must have predict_one"):
        GroupwiseRegressor(learner=object()).fit(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="x has 3 features, but the learner was built for 2"):
        OnlineRidge(n_features=2).predict_one(np.zeros(3))


def test_not_fitted_and_regret_inputs() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        GroupwiseRegressor().predict(np.zeros((2, 2)))
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match=r"losses must have shape \(4,\)"):
        groupwise_regret(X, y, np.zeros(3), np.ones((4, 1)))
    with pytest.raises(ValueError, match="membership must have shape"):
        groupwise_regret(X, y, np.zeros(4), np.ones((3, 1)))
    with pytest.raises(ValueError, match="checkpoints must be a positive int, got 0"):
        groupwise_regret(X, y, np.zeros(4), np.ones((4, 1)), checkpoints=0)
    with pytest.raises(ValueError, match="comparator must be"):
        groupwise_regret(X, y, np.zeros(4), np.ones((4, 1)), comparator="lasso")  # type: ignore[arg-type]

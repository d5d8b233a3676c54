"""The estimator API: batch = streaming = river-style, predicates = matrices, adapters, clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from groupwise_regret import (
    GroupwiseClassifier,
    GroupwiseRegressor,
    OnlineGradientDescent,
    OnlineRidge,
    PartialFitLearner,
    synthetic_stream,
)

from papershelf.testing import run_readme_blocks


def _stream(rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = rng.uniform(size=(n, 4))
    A = np.column_stack([X[:, 0] > 0.5, X[:, 1] > 0.3])
    y = np.clip(0.3 * X[:, 2] + 0.4 * A[:, 0] * X[:, 3] + 0.05 * rng.normal(size=n), 0, 1)
    return X, y, A


def test_predicates_equal_matrix(rng: np.random.Generator) -> None:
    X, y, A = _stream(rng)
    a = GroupwiseRegressor(
        groups={"g1": lambda X: X[:, 0] > 0.5, "g2": lambda X: X[:, 1] > 0.3}
    ).fit(X, y)
    b = GroupwiseRegressor(groups=["g1", "g2"]).fit(X, y, A)
    np.testing.assert_array_equal(a.regret_, b.regret_)
    np.testing.assert_array_equal(a.predict(X[:50]), b.predict(X[:50], A[:50]))
    assert a.group_names_ == ("g1", "g2", "always_on")


def test_learn_one_equals_partial_fit(rng: np.random.Generator) -> None:
    X, y, A = _stream(rng, 300)
    batch = GroupwiseRegressor(groups=["g1", "g2"])
    rec = batch.partial_fit_predict(X, y, A)
    one = GroupwiseRegressor(groups=["g1", "g2"])
    preds = []
    for x, t, a in zip(X, y, A):
        names = {n for n, on in zip(("g1", "g2"), a) if on}
        preds.append(one.predict_one(x, groups=names))
        one.learn_one(x, t, groups=names)
    np.testing.assert_allclose(preds, rec.prediction, rtol=0, atol=1e-13)
    np.testing.assert_allclose(one.regret_, batch.regret_, rtol=0, atol=1e-12)


def test_predict_equals_stream_prediction_without_learning(rng: np.random.Generator) -> None:
    X, y, A = _stream(rng)
    est = GroupwiseRegressor(groups=["g1", "g2"]).fit(X[:500], y[:500], A[:500])
    p = est.predict(X[500:], A[500:])
    rec = (
        GroupwiseRegressor(groups=["g1", "g2"])
        .fit(X[:500], y[:500], A[:500])
        .partial_fit_predict(X[500:501], y[500:501], A[500:501])
    )
    assert p[0] == pytest.approx(rec.prediction[0], abs=1e-14)
    W = est.mixture_weights(X[500:], A[500:])
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    assert np.all(W[~np.c_[A[500:], np.ones(100, bool)]] == 0)


def test_sample_mode_is_seeded(rng: np.random.Generator) -> None:
    X, y, A = _stream(rng)
    runs = [
        GroupwiseRegressor(prediction="sample", random_state=3)
        .partial_fit_predict(X, y, A)
        .prediction
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    mean = GroupwiseRegressor().partial_fit_predict(X, y, A)
    assert not np.array_equal(runs[0], mean.prediction)


def test_sklearn_partial_fit_adapter_and_clone(rng: np.random.Generator) -> None:
    from sklearn.base import clone
    from sklearn.linear_model import SGDRegressor

    X, y, A = _stream(rng, 200)
    learner = PartialFitLearner(SGDRegressor(learning_rate="constant", eta0=0.05, random_state=0))
    est = GroupwiseRegressor(learner, groups=["g1", "g2"])
    rec = est.partial_fit_predict(X, y, A)
    assert np.all(np.isfinite(rec.prediction))
    ref = SGDRegressor(learning_rate="constant", eta0=0.05, random_state=0)
    rows = np.flatnonzero(A[:, 0])
    for r in rows:
        ref.partial_fit(X[r : r + 1], y[r : r + 1])
    np.testing.assert_allclose(est.experts_.learners[0].estimator.coef_, ref.coef_)  # type: ignore[attr-defined]
    c = clone(est)
    assert not hasattr(c, "experts_") and c.get_params()["groups"] == ["g1", "g2"]
    c.set_params(always_on=False)
    assert c.always_on is False and c.learner is not est.learner


def test_classifier_logistic_mode(rng: np.random.Generator) -> None:
    X = rng.normal(size=(1500, 3))
    A = np.column_stack([X[:, 0] > 0])
    logit = np.where(A[:, 0], 3 * X[:, 1], -3 * X[:, 1])  # opposite effect in the group
    y = (rng.random(1500) < 1 / (1 + np.exp(-logit))).astype(float)
    clf = GroupwiseClassifier(groups=["pos"])
    rec = clf.partial_fit_predict(X, y, A)
    base = GroupwiseClassifier(groups=["pos"]).fit(
        X, y, np.zeros_like(A)
    )  # only the always-on learner
    proba = clf.predict_proba(X[-200:], A[-200:])
    assert proba.shape == (200, 2) and np.all((proba > 0) & (proba < 1))
    acc = (clf.predict(X[-200:], A[-200:]) == y[-200:]).mean()
    acc_base = (base.predict(X[-200:], np.zeros((200, 1))) == y[-200:]).mean()
    assert acc > acc_base + 0.15
    assert rec.loss.mean() < 0.3
    sk: GroupwiseClassifier = GroupwiseClassifier(
        PartialFitLearner(
            __import__("sklearn.linear_model").linear_model.SGDClassifier(
                loss="log_loss", random_state=0
            ),
            method="decision_function",
            classes=[0, 1],
        ),
        groups=["pos"],
    ).fit(X[:300], y[:300], A[:300])
    assert sk.predict_proba(X[:5], A[:5]).shape == (5, 2)


def test_ridge_learner_for_classification_is_a_linear_probability_model(
    rng: np.random.Generator,
) -> None:
    X = rng.uniform(size=(300, 3))
    y = (X[:, 0] > 0.5).astype(float)
    est = GroupwiseRegressor(OnlineRidge(), loss="logistic").fit(X, y)
    p = est.predict(X)
    assert np.all((p >= 1e-3) & (p <= 1 - 1e-3))


def test_fit_resets_and_chunks_equal_one_shot(rng: np.random.Generator) -> None:
    s = synthetic_stream(900, 5, seed=1)
    one = GroupwiseRegressor(OnlineGradientDescent(lr=0.2)).partial_fit(s.X, s.y, s.membership)
    chunked = GroupwiseRegressor(OnlineGradientDescent(lr=0.2))
    for sl in np.array_split(np.arange(900), 5):
        chunked.partial_fit(s.X[sl], s.y[sl], s.membership[sl])
    np.testing.assert_allclose(chunked.regret_, one.regret_, atol=1e-12)
    chunked.fit(s.X[:10], s.y[:10], s.membership[:10])
    assert chunked.n_rounds_ == 10


def test_readme_blocks_run() -> None:
    run_readme_blocks(Path(__file__).parents[1] / "README.md")

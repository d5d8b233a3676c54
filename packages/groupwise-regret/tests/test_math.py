"""Equations: log-space AdaNormalHedge weights, invariants, Sherman–Morrison ridge, comparator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from groupwise_regret import (
    GroupwiseRegressor,
    OnlineGradientDescent,
    OnlineRidge,
    anh_distribution,
    anh_update,
)
from groupwise_regret.functional import (
    anh_log_weight_scalar,
    anh_log_weights,
    ridge_batch,
    ridge_sherman_morrison,
)
from groupwise_regret.regret import best_fixed_loss, groupwise_regret
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


def test_log_weights_match_direct_formula(rng: np.random.Generator) -> None:
    R = rng.uniform(-5, 30, size=500)
    C = np.abs(R) + rng.uniform(0, 50, size=500)
    D = 3 * (C + 1)
    direct = 0.5 * (np.exp(np.maximum(R + 1, 0) ** 2 / D) - np.exp(np.maximum(R - 1, 0) ** 2 / D))
    lw = anh_log_weights(R, C)
    pos = direct > 0
    np.testing.assert_allclose(np.exp(lw[pos]), direct[pos], rtol=1e-12)
    assert np.all(lw[~pos] == -np.inf)
    scalar = np.array([anh_log_weight_scalar(r, c) for r, c in zip(R, C)])
    np.testing.assert_allclose(scalar[pos], lw[pos], rtol=1e-14, atol=1e-14)


def test_log_weights_do_not_overflow_where_official_gives_nan() -> None:
    R, C = np.array([3000.0, 2999.0]), np.array([3000.0, 3000.0])
    with np.errstate(over="ignore", invalid="ignore"):
        D = 3 * (C + 1)
        official = 0.5 * (np.exp((R + 1) ** 2 / D) - np.exp((R - 1) ** 2 / D))
    assert not np.all(np.isfinite(official))
    p = anh_distribution(R, C, [True, True])
    assert np.all(np.isfinite(p)) and p[0] > p[1] > 0
    # ratio from the closed form in log space
    lw = anh_log_weights(R, C)
    assert p[0] / p[1] == pytest.approx(math.exp(lw[0] - lw[1]), rel=1e-12)


def test_edge_cases_follow_official_code() -> None:
    np.testing.assert_array_equal(
        anh_distribution(np.zeros(4), np.zeros(4), [0, 0, 0, 0]), np.full(4, 0.25)
    )
    p = anh_distribution(
        np.array([-2.0, -1.0, 5.0, -3.0]), np.array([2.0, 1.0, 5.0, 3.0]), [1, 1, 0, 1]
    )
    np.testing.assert_array_equal(p, [1 / 3, 1 / 3, 0.0, 1 / 3])  # all awake weights are 0
    R, C, lhat = anh_update(np.ones(3), np.ones(3), np.full(3, 1 / 3), np.ones(3), [0, 0, 0])
    assert lhat == 0.0 and np.all(R == 1.0) and np.all(C == 1.0)


finite = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    R=arrays(np.float64, 6, elements=finite),
    extra=arrays(np.float64, 6, elements=st.floats(0, 50)),
    active=arrays(np.bool_, 6),
    losses=arrays(np.float64, 6, elements=st.floats(0, 1)),
)
def test_adanormalhedge_invariants(
    R: np.ndarray, extra: np.ndarray, active: np.ndarray, losses: np.ndarray
) -> None:
    C = np.abs(R) + extra  # reachable states have |R| <= C
    p = anh_distribution(R, C, active)
    assert p.sum() == pytest.approx(1.0, abs=1e-12) and np.all(p >= 0)
    if active.any():
        assert np.all(p[~active] == 0)
    R2, C2, lhat = anh_update(R, C, p, losses, active)
    r = R2 - R
    assert abs(float(p @ np.where(active, r, 0))) <= 1e-12  # expected instantaneous regret is 0
    assert np.all(C2 >= C) and np.all(np.abs(R2) <= C2 + 1e-9)
    assert np.all(r[~active] == 0)
    if active.any():
        assert losses[active].min() - 1e-12 <= lhat <= losses[active].max() + 1e-12


def test_estimator_state_satisfies_invariants(rng: np.random.Generator) -> None:
    X = rng.uniform(size=(1500, 6))
    A = rng.random((1500, 4)) < 0.5
    y = rng.uniform(size=1500)
    est = GroupwiseRegressor().fit(X, y, A)
    assert np.all(np.abs(est.regret_) <= est.abs_regret_ + 1e-9)
    np.testing.assert_array_equal(est.group_counts_, np.r_[A.sum(axis=0), 1500])
    rec = GroupwiseRegressor().partial_fit_predict(X, y, A)
    np.testing.assert_allclose(rec.weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.all((rec.loss >= 0) & (rec.loss <= 1)) and np.all(
        (rec.expected_loss >= 0) & (rec.expected_loss <= 1)
    )
    assert np.all(rec.loss <= rec.expected_loss + 1e-12)  # Jensen: mean prediction is never worse


def test_sherman_morrison_equals_batch_ridge_after_every_step(rng: np.random.Generator) -> None:
    d, T, alpha = 7, 400, 0.5
    X = rng.normal(size=(T, d)) * np.linspace(0.1, 3, d)
    y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=T)
    P, b = np.eye(d) / alpha, np.zeros(d)
    learner = OnlineRidge(alpha=alpha)
    for t in range(T):
        assert learner.predict_one(X[t]) == pytest.approx(
            float(X[t] @ ridge_batch(X[:t], y[:t], alpha)) if t else 0.0, abs=1e-10
        )
        P, b, theta = ridge_sherman_morrison(P, b, X[t], y[t])
        learner.learn_one(X[t], y[t])
        np.testing.assert_allclose(
            theta, ridge_batch(X[: t + 1], y[: t + 1], alpha), rtol=1e-9, atol=1e-10
        )
        np.testing.assert_allclose(learner.coef_, theta, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(P, np.linalg.inv(alpha * np.eye(d) + X.T @ X), rtol=1e-9, atol=1e-12)


def test_progressive_predict_equals_learn_one_loop(rng: np.random.Generator) -> None:
    X, y = rng.normal(size=(300, 5)), rng.normal(size=300)
    a, b = OnlineRidge(), OnlineRidge()
    preds = a.progressive_predict(X, y)
    ref = []
    for x, t in zip(X, y):
        ref.append(b.predict_one(x))
        b.learn_one(x, t)
    np.testing.assert_array_equal(preds, ref)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_gd_bank_equals_single_learner(rng: np.random.Generator) -> None:
    X = rng.normal(size=(400, 4))
    y = (rng.random(400) < 0.5).astype(float)
    for loss in ("squared", "absolute", "logistic"):
        proto = OnlineGradientDescent(lr=0.3, loss=loss, radius=2.0)  # type: ignore[arg-type]
        est = GroupwiseRegressor(
            proto, always_on=True, loss="logistic" if loss == "logistic" else "squared", clip=False
        )
        est.partial_fit(X, y)
        ref = proto.clone()
        for x, t in zip(X, y):
            ref.learn_one(x, t)
        np.testing.assert_allclose(est.experts_.theta[0], ref.coef_, rtol=1e-13, atol=1e-14)  # type: ignore[attr-defined,arg-type]


def test_incremental_comparator_equals_lstsq(rng: np.random.Generator) -> None:
    n = 600
    X = np.column_stack(
        [rng.uniform(size=(n, 4)), np.ones(n), np.ones(n), np.zeros(n)]
    )  # rank-deficient
    y = rng.uniform(size=n)
    A = np.ones((n, 1), dtype=bool)
    for comp in ("ols", "ridge"):
        res = groupwise_regret(
            X, y, np.zeros(n), A, checkpoints=9, comparator=comp, alpha=0.7, y_range=(0, 2)
        )  # type: ignore[arg-type]
        g = res["g0"]
        direct = [
            best_fixed_loss(X[:c], y[:c], comparator=comp, alpha=0.7, scale=2.0) for c in g.counts
        ]  # type: ignore[arg-type]
        np.testing.assert_allclose(g.comparator_loss, direct, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(g.regret, -g.comparator_loss)
    assert list(g.counts) == [67, 133, 200, 267, 333, 400, 467, 533, 600]

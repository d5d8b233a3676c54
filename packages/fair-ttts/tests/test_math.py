"""Equations: zero-flip identity, closed forms on a stump, Monte Carlo agrees with the exact expectation."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import pytest
from fair_ttts import FairTTTSClassifier, TTTSClassifier
from fair_ttts.functional import (
    HEURISTICS,
    Boost,
    compile_trees,
    flip_parameters,
    more_negative_child,
    propagate,
)
from sklearn.tree import DecisionTreeClassifier


@pytest.mark.parametrize("model", ["tree", "forest", "extra"])
@pytest.mark.parametrize("method", ["exact", "monte_carlo"])
@pytest.mark.parametrize("heuristic", HEURISTICS)
def test_zero_flip_is_sklearn(
    request: pytest.FixtureRequest, biased: Any, split: Any, model: str, method: str, heuristic: str
) -> None:
    est = request.getfixturevalue(model)
    tr, te = split
    m = TTTSClassifier(
        est, heuristic=heuristic, p_max=0.0, method=method, n_simulations=3, random_state=0
    )
    if heuristic == "depth":
        m.set_params(depth_rate=0.0, p_max=0.3)
    m.fit(biased.X[tr])
    got = m.predict_proba(biased.X[te])
    np.testing.assert_allclose(got, est.predict_proba(biased.X[te]), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m.predict(biased.X[te]), est.predict(biased.X[te]))


def _stump() -> tuple[DecisionTreeClassifier, np.ndarray, np.ndarray]:
    # one split on x0 at 0.5; left leaf 80% class 0, right leaf 25% class 0
    X = np.array([[0.0]] * 5 + [[1.0]] * 4)
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1])
    return DecisionTreeClassifier(max_depth=1).fit(X, y), X, y


def test_stump_closed_form_distance() -> None:
    est, X, _ = _stump()
    m = TTTSClassifier(est, method="exact").fit(X)
    # feature_range width 1, d = 0.5 -> p = 0.1 * (1 - 0.5) = 0.05
    p = 0.05
    left, right = np.array([0.8, 0.2]), np.array([0.25, 0.75])
    got = m.predict_proba(np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(got[0], (1 - p) * left + p * right, atol=1e-15)
    np.testing.assert_allclose(got[1], (1 - p) * right + p * left, atol=1e-15)
    # official scale: D = max|t| = 0.5, p = max(0.1 - 0.5 / 0.5, 0) = 0 -> plain tree
    off = TTTSClassifier(est, method="exact", distance_scale="tree_max_abs_threshold").fit(X)
    np.testing.assert_allclose(off.predict_proba(X), est.predict_proba(X), atol=1e-15)


def test_stump_fairness_boost_closed_form() -> None:
    est, X, _ = _stump()
    # x0 is the protected attribute; the unprivileged value 0 goes left, which is the more
    # negative child (class-0 rate 0.8 > 0.25), so p = min(9 * 0.05, 0.5) = 0.45 for x0 = 0 only.
    m = FairTTTSClassifier(
        est,
        protected_attribute=0,
        unprivileged_value=0,
        favorable_class=1,
        alpha=9.0,
        method="exact",
    ).fit(X)
    left, right = np.array([0.8, 0.2]), np.array([0.25, 0.75])
    got = m.predict_proba(np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(got[0], 0.55 * left + 0.45 * right, atol=1e-15)
    np.testing.assert_allclose(got[1], 0.95 * right + 0.05 * left, atol=1e-15)
    # unprivileged = 1: its natural child (right) is the less negative one -> no boost
    m2 = FairTTTSClassifier(
        est, protected_attribute=0, unprivileged_value=1, favorable_class=1, method="exact"
    ).fit(X)
    np.testing.assert_allclose(
        m2.predict_proba(X), TTTSClassifier(est, method="exact").fit(X).predict_proba(X), atol=1e-15
    )
    # the cap: alpha large -> 0.5
    m3 = FairTTTSClassifier(
        est,
        protected_attribute=0,
        unprivileged_value=0,
        favorable_class=1,
        alpha=100.0,
        method="exact",
    ).fit(X)
    np.testing.assert_allclose(
        m3.predict_proba(np.array([[0.0]]))[0], 0.5 * left + 0.5 * right, atol=1e-15
    )


def test_flip_parameters_each_heuristic(tree: DecisionTreeClassifier) -> None:
    f = compile_trees([tree.tree_])
    internal = f.is_internal
    a, b, _ = flip_parameters(f, "fixed", p_max=0.2)
    assert np.all(a[internal] == 0.2) and np.all(b == 0)
    a, _, _ = flip_parameters(f, "depth", p_max=0.2, depth_rate=0.05)
    np.testing.assert_allclose(a[internal], np.minimum(0.05 * f.depth[internal], 0.2))
    a, _, _ = flip_parameters(f, "agreement", p_max=0.5)
    np.testing.assert_allclose(a[internal], np.minimum(1 - f.value[internal].max(axis=1), 0.5))
    mu, sd = np.arange(4.0), np.arange(1.0, 5.0)
    a, b, c = flip_parameters(f, "confidence", p_max=0.1, center=mu, spread=sd)
    np.testing.assert_allclose(b[internal], 1 / sd[f.feature[internal]])
    np.testing.assert_allclose(c[internal], mu[f.feature[internal]])
    w = np.full(f.n_nodes, 2.0)
    a, b, c = flip_parameters(f, "distance", p_max=0.1, widths=w)
    np.testing.assert_allclose(b[internal], 0.05)
    np.testing.assert_allclose(c[internal], f.threshold[internal])
    assert np.all(a[~internal] == 0)


def test_official_distance_scale_matches_formula(
    tree: DecisionTreeClassifier, biased: Any, split: Any
) -> None:
    tr, _ = split
    m = TTTSClassifier(tree, distance_scale="tree_max_abs_threshold", method="exact").fit(
        biased.X[tr]
    )
    a, b, c = m.flip_params_
    t = tree.tree_
    inner = t.children_left >= 0
    D = np.max(np.abs(t.threshold[inner]))
    x = biased.X[tr][:50].astype(np.float32).astype(np.float64)
    v = np.flatnonzero(inner)
    d = np.abs(x[:, t.feature[v]] - t.threshold[v])
    official = np.minimum(0.1 - np.minimum(d / D, 0.1), 0.5)  # the official expression
    ours = np.clip(a[v] - b[v] * np.abs(x[:, t.feature[v]] - c[v]), 0, 0.5)
    np.testing.assert_allclose(ours, official, atol=1e-15)


def test_more_negative_child_rate_and_count() -> None:
    est, _, _ = _stump()
    f = compile_trees([est.tree_])
    assert more_negative_child(f, 1, by="rate")[0] == f.left[0]
    assert more_negative_child(f, 1, by="count")[0] == f.left[0]  # 4 vs 1 unfavourable
    assert more_negative_child(f, 0, by="rate")[0] == f.right[0]
    assert np.all(more_negative_child(f, 1)[~f.is_internal] == -1)


def test_count_and_rate_can_differ() -> None:
    # left: 10 samples, 5 unfavourable (rate .5); right: 2 samples, 2 unfavourable (rate 1)
    X = np.array([[0.0]] * 10 + [[1.0]] * 2)
    y = np.array([0] * 5 + [1] * 5 + [0, 0])
    f = compile_trees([DecisionTreeClassifier(max_depth=1).fit(X, y).tree_])
    assert more_negative_child(f, 1, by="rate")[0] == f.right[0]
    assert more_negative_child(f, 1, by="count")[0] == f.left[0]


@pytest.mark.parametrize("fair", [False, True])
def test_monte_carlo_within_4_sigma_of_exact(
    tree: DecisionTreeClassifier, biased: Any, split: Any, fair: bool
) -> None:
    tr, te = split
    kw: dict[str, Any] = {"heuristic": "distance", "p_max": 0.3}
    if fair:
        cls: Any = FairTTTSClassifier
        kw.update(protected_attribute=0, unprivileged_value=0, favorable_class=1, alpha=3.0)
    else:
        cls = TTTSClassifier
    X = biased.X[te][:200]
    exact = cls(tree, method="exact", **kw).fit(biased.X[tr]).predict_proba(X)
    K, S = 8, 200
    runs = np.stack(
        [
            cls(tree, method="monte_carlo", n_simulations=S, random_state=k, **kw)
            .fit(biased.X[tr])
            .predict_proba(X)
            for k in range(K)
        ]
    )
    mean = runs.mean(axis=0)
    # a walk's leaf value is in [0, 1]: per-entry sd <= 1/2, so the mean of K*S walks has sd <= 0.5/sqrt(KS)
    bound = 4 * 0.5 / np.sqrt(K * S)
    assert np.max(np.abs(mean - exact)) < bound
    assert np.max(np.abs(runs[0] - exact)) > 1e-4  # Monte Carlo really is random


def test_exact_is_mean_of_per_walk_values_forest(forest: Any, biased: Any, split: Any) -> None:
    tr, te = split
    X = biased.X[te][:100]
    exact = (
        TTTSClassifier(forest, method="exact", heuristic="fixed", p_max=0.05)
        .fit(biased.X[tr])
        .predict_proba(X)
    )
    mc = (
        TTTSClassifier(forest, n_simulations=400, heuristic="fixed", p_max=0.05, random_state=0)
        .fit(biased.X[tr])
        .predict_proba(X)
    )
    # forest average over 15 trees * 400 walks: sd <= 0.5 / sqrt(6000)
    assert np.max(np.abs(mc - exact)) < 4 * 0.5 / np.sqrt(15 * 400) * 1.5
    np.testing.assert_allclose(exact.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(mc.sum(axis=1), 1.0, atol=1e-12)


def test_propagate_boost_only_changes_unprivileged_rows(
    tree: DecisionTreeClassifier, biased: Any, split: Any
) -> None:
    _, te = split
    f = compile_trees([tree.tree_])
    params = flip_parameters(f, "fixed", p_max=0.05)
    X = biased.X[te].astype(np.float32).astype(np.float64)
    child = np.where(f.is_internal & (f.feature == 0), more_negative_child(f, 1), -1)
    unpriv = X[:, 0] == 0
    plain = propagate(f, X, params)
    boosted = propagate(f, X, params, boost=Boost(9.0, child, unpriv))
    np.testing.assert_array_equal(plain[~unpriv], boosted[~unpriv])
    assert np.any(np.abs(plain[unpriv] - boosted[unpriv]) > 1e-3)
    # the boost moves unprivileged rows towards the favourable class on average
    assert boosted[unpriv, 1].mean() > plain[unpriv, 1].mean()


@pytest.mark.parametrize("method", ["exact", "monte_carlo"])
def test_zero_flip_apply_path_equals_numpy_walk(
    forest: Any, biased: Any, split: Any, method: Literal["exact", "monte_carlo"]
) -> None:
    # with every p = 0, propagate lets scikit-learn's Tree.apply walk the trees; without the Tree
    # objects it walks them in numpy: both give predict_proba, with and without the boost
    _, te = split
    f = compile_trees([t.tree_ for t in forest.estimators_])
    assert len(f.sklearn_trees) == forest.n_estimators
    bare = dataclasses.replace(f, sklearn_trees=())
    params = flip_parameters(f, "fixed", p_max=0.0)
    X = biased.X[te].astype(np.float32).astype(np.float64)
    child = np.where(f.is_internal & (f.feature == 0), more_negative_child(f, 1), -1)
    expected = forest.predict_proba(biased.X[te])
    for boost in (None, Boost(9.0, child, X[:, 0] == 0)):
        got = [
            propagate(
                g,
                X,
                params,
                method=method,
                n_simulations=3,
                rng=np.random.default_rng(0),
                boost=boost,
            )
            for g in (f, bare)
        ]
        np.testing.assert_allclose(got[0], got[1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-12)

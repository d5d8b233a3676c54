"""Parity: the official per-sample rule (re-typed here), the vectorised walk, and fairlearn's metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fair_ttts import (
    FairTTTSClassifier,
    TTTSClassifier,
    demographic_parity_difference,
    demographic_parity_ratio,
    disparate_impact,
    equal_opportunity_difference,
    equalized_odds_difference,
    group_summary,
    statistical_parity_difference,
)
from fair_ttts.functional import reference_predict_proba
from sklearn.tree import DecisionTreeClassifier

fairlearn_metrics = pytest.importorskip(
    "fairlearn.metrics"
)  # in the test group: always installed there


def _official_fair_dt(
    est: DecisionTreeClassifier,
    X: np.ndarray,
    *,
    alpha: float,
    prot: int,
    unpriv: float,
    unfav: int,
    S: int,
    seed: int,
) -> np.ndarray:
    """The FairTTTS official DT predict_proba (distance rule) written out with a seeded RandomState."""
    rs = np.random.RandomState(seed)
    t = est.tree_
    X = X.astype(np.float32)
    valid = t.threshold[t.threshold != -2]
    D = np.max(np.abs(valid))
    out = []
    for x in X:
        res = []
        for _ in range(S):
            node = 0
            while True:
                f = t.feature[node]
                if f == -2:
                    res.append(t.value[node][0])
                    break
                thr = t.threshold[node]
                go_left = x[f] <= thr
                direction = "left" if go_left else "right"
                p = min(0.1 - min(abs(x[f] - thr) / D, 0.1), 0.5)
                lu = t.value[t.children_left[node]][0][unfav]
                ru = t.value[t.children_right[node]][0][unfav]
                more_neg = "right" if ru > lu else "left"
                if direction == more_neg and x[prot] == unpriv and f == prot:
                    p = min(p * alpha, 0.5)
                if rs.rand() > p:
                    node = t.children_left[node] if go_left else t.children_right[node]
                else:
                    node = t.children_right[node] if go_left else t.children_left[node]
        out.append(np.mean(res, axis=0))
    return np.array(out)


@pytest.fixture(scope="module")
def small_scale_tree(biased: Any, split: Any) -> DecisionTreeClassifier:
    # large-scale 'income' column makes the official D large, so p > 0 almost everywhere (the paper's regime)
    tr, _ = split
    return DecisionTreeClassifier(max_depth=5, min_samples_leaf=30, random_state=0).fit(
        biased.X[tr], biased.y[tr]
    )


def test_reference_loop_reproduces_official_rule_bitwise(
    small_scale_tree: DecisionTreeClassifier, biased: Any, split: Any
) -> None:
    tr, te = split
    X = biased.X[te][:40]
    m = FairTTTSClassifier(
        small_scale_tree,
        protected_attribute=0,
        unprivileged_value=0,
        favorable_class=1,
        alpha=9.0,
        distance_scale="tree_max_abs_threshold",
    ).fit(biased.X[tr])
    X32 = X.astype(np.float32).astype(np.float64)
    ours = reference_predict_proba(
        m.forest_,
        X32,
        m.flip_params_,
        n_simulations=20,
        rng=np.random.RandomState(3),
        boost=m._boost(X32),
    )
    official = _official_fair_dt(
        small_scale_tree, X, alpha=9.0, prot=0, unpriv=0.0, unfav=0, S=20, seed=3
    )
    np.testing.assert_allclose(ours, official, rtol=0, atol=1e-12)


def test_vectorised_matches_official_rule_statistically(
    small_scale_tree: DecisionTreeClassifier, biased: Any, split: Any
) -> None:
    tr, te = split
    X = biased.X[te][:60]
    kw: dict[str, Any] = {
        "protected_attribute": 0,
        "unprivileged_value": 0,
        "favorable_class": 1,
        "distance_scale": "tree_max_abs_threshold",
    }
    official = _official_fair_dt(
        small_scale_tree, X, alpha=9.0, prot=0, unpriv=0.0, unfav=0, S=400, seed=0
    )
    exact = (
        FairTTTSClassifier(small_scale_tree, method="exact", **kw)
        .fit(biased.X[tr])
        .predict_proba(X)
    )
    mc = (
        FairTTTSClassifier(small_scale_tree, n_simulations=400, random_state=0, **kw)
        .fit(biased.X[tr])
        .predict_proba(X)
    )
    bound = 4 * 0.5 / np.sqrt(400)
    assert np.max(np.abs(official - exact)) < bound
    assert np.max(np.abs(mc - exact)) < bound


def test_ttts_reference_loop_forest(forest: Any, biased: Any, split: Any) -> None:
    tr, te = split
    X = biased.X[te][:30]
    m = TTTSClassifier(forest, heuristic="depth", method="exact").fit(biased.X[tr])
    X32 = X.astype(np.float32).astype(np.float64)
    ref = reference_predict_proba(
        m.forest_, X32, m.flip_params_, n_simulations=40, rng=np.random.default_rng(0)
    )
    exact = m.predict_proba(X)
    assert np.max(np.abs(ref - exact)) < 4 * 0.5 / np.sqrt(15 * 40) * 1.5


# ---------------------------------------------------------------- metrics


def _preds(seed: int, n: int = 500, groups: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.3 + 0.2 * (g == 1)).astype(int)
    yp = np.where(rng.random(n) < 0.8, y, 1 - y)
    return y, yp, g


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("groups", [2, 3])
def test_metrics_match_fairlearn(seed: int, groups: int) -> None:
    y, yp, g = _preds(seed, groups=groups)
    kw: dict[str, Any] = {"sensitive_features": g}
    assert demographic_parity_difference(y, yp, **kw) == pytest.approx(
        fairlearn_metrics.demographic_parity_difference(y, yp, **kw), abs=1e-12
    )
    assert demographic_parity_ratio(y, yp, **kw) == pytest.approx(
        fairlearn_metrics.demographic_parity_ratio(y, yp, **kw), abs=1e-12
    )
    assert equalized_odds_difference(y, yp, **kw) == pytest.approx(
        fairlearn_metrics.equalized_odds_difference(y, yp, **kw), abs=1e-12
    )
    assert equalized_odds_difference(y, yp, agg="mean", **kw) == pytest.approx(
        fairlearn_metrics.equalized_odds_difference(y, yp, agg="mean", **kw), abs=1e-12
    )
    assert equal_opportunity_difference(y, yp, **kw) == pytest.approx(
        fairlearn_metrics.equal_opportunity_difference(y, yp, **kw), abs=1e-12
    )


def test_metrics_favourable_class_zero_matches_fairlearn_on_flipped_labels() -> None:
    y, yp, g = _preds(7)
    kw: dict[str, Any] = {"sensitive_features": g}
    assert demographic_parity_difference(y, yp, pos_label=0, **kw) == pytest.approx(
        fairlearn_metrics.demographic_parity_difference(1 - y, 1 - yp, **kw), abs=1e-12
    )
    assert equalized_odds_difference(y, yp, pos_label=0, **kw) == pytest.approx(
        fairlearn_metrics.equalized_odds_difference(1 - y, 1 - yp, **kw), abs=1e-12
    )


def test_metrics_hand_computed() -> None:
    #            group a (unpriv)        group b
    y_true = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0])
    y_pred = np.array([1, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    s = np.array(["a"] * 4 + ["b"] * 6)
    # a: SR = 1/4, TPR = 1/2, FPR = 0/2;  b: SR = 4/6, TPR = 3/3, FPR = 1/3
    summ = group_summary(y_true, y_pred, sensitive_features=s)
    np.testing.assert_allclose(summ.selection_rate, [0.25, 4 / 6])
    np.testing.assert_allclose(summ.true_positive_rate, [0.5, 1.0])
    np.testing.assert_allclose(summ.false_positive_rate, [0.0, 1 / 3])
    np.testing.assert_allclose(summ.accuracy, [0.75, 5 / 6])
    kw: dict[str, Any] = {"sensitive_features": s}
    assert demographic_parity_difference(y_true, y_pred, **kw) == pytest.approx(4 / 6 - 0.25)
    assert demographic_parity_ratio(y_true, y_pred, **kw) == pytest.approx(0.25 / (4 / 6))
    assert equal_opportunity_difference(y_true, y_pred, **kw) == pytest.approx(0.5)
    assert equalized_odds_difference(y_true, y_pred, **kw) == pytest.approx(0.5)
    assert equalized_odds_difference(y_true, y_pred, agg="mean", **kw) == pytest.approx(
        (0.5 + 1 / 3) / 2
    )
    assert disparate_impact(y_true, y_pred, unprivileged_value="a", **kw) == pytest.approx(
        0.25 / (4 / 6)
    )
    assert statistical_parity_difference(
        y_true, y_pred, unprivileged_value="a", **kw
    ) == pytest.approx(0.25 - 4 / 6)
    assert "selection_rate" in summ.rows()[0]
    assert "sel.rate" in str(summ)

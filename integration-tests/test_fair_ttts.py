"""fair-ttts with balance-score, as a downstream project would use them.

A forest is post-processed with TTTS / FairTTTS and the probability quality of each model is
checked with balance-score: Balance (signed calibration: accuracy minus mean confidence; > 0 is
under-confident) and equal-width ECE.
"""

from __future__ import annotations

import balance_score
import numpy as np
import pytest
from fair_ttts import (
    FairTTTSClassifier,
    TTTSClassifier,
    demographic_parity_difference,
    make_biased_classification,
)
from sklearn.ensemble import RandomForestClassifier


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    d = make_biased_classification(4000, random_state=0)
    X_tr, y_tr = d.X[:3000], d.y[:3000]
    forest = RandomForestClassifier(n_estimators=30, random_state=0, n_jobs=1).fit(X_tr, y_tr)
    fair_kw = {"protected_attribute": 0, "unprivileged_value": 0, "favorable_class": 1}
    return {
        "data": d,
        "forest": forest,
        "off": TTTSClassifier(forest, p_max=0.0, method="exact").fit(X_tr),
        "ttts": TTTSClassifier(forest, random_state=0).fit(X_tr),
        "fair": FairTTTSClassifier(forest, random_state=0, **fair_kw).fit(X_tr),
    }


_CACHE: dict[str, tuple[float, float, np.ndarray, np.ndarray]] = {}


def _quality(name: str, models: dict[str, object]) -> tuple[float, float, np.ndarray, np.ndarray]:
    if name not in _CACHE:
        d = models["data"]
        X_te, y_te = d.X[3000:], d.y[3000:]  # type: ignore[attr-defined]
        q = models[name].predict_proba(X_te)[:, 1]  # type: ignore[attr-defined]
        _CACHE[name] = (
            balance_score.balance_score(y_te, q),
            balance_score.expected_calibration_error(y_te, q, n_bins=10),
            y_te,
            q,
        )
    return _CACHE[name]


def test_zero_flip_wrapper_has_the_forests_probability_quality(models: dict[str, object]) -> None:
    b_forest, e_forest, _, _ = _quality("forest", models)
    b_off, e_off, _, _ = _quality("off", models)
    assert b_off == pytest.approx(b_forest, abs=1e-12)
    assert e_off == pytest.approx(e_forest, abs=1e-12)


def test_balance_is_accuracy_minus_confidence_and_bounded_by_ece(models: dict[str, object]) -> None:
    for name in ("forest", "ttts", "fair"):
        b, e, y, q = _quality(name, models)
        by_hand = np.mean((q >= 0.5) == y) - np.mean(np.maximum(q, 1 - q))
        assert b == pytest.approx(by_hand, abs=1e-12), name
        assert abs(b) <= e + 1e-12, name  # 10 equal-width bins have an edge at 0.5


def test_ttts_walk_makes_the_forest_under_confident(models: dict[str, object]) -> None:
    # Flipping at every node mixes leaves and shrinks probabilities towards 1/2: Balance turns
    # clearly positive (measured: forest -0.02, TTTS +0.15, FairTTTS +0.16). Users who need
    # calibrated probabilities should recalibrate the wrapper.
    b_forest, _, _, _ = _quality("forest", models)
    b_ttts, _, _, _ = _quality("ttts", models)
    b_fair, _, _, _ = _quality("fair", models)
    assert b_ttts > b_forest + 0.05
    assert b_fair > b_forest + 0.05


def test_fairness_gain_comes_with_the_calibration_shift(models: dict[str, object]) -> None:
    d = models["data"]
    X_te, a_te = d.X[3000:], d.protected[3000:]  # type: ignore[attr-defined]
    dp_forest = demographic_parity_difference(
        None, models["forest"].predict(X_te), sensitive_features=a_te
    )  # type: ignore[attr-defined]
    dp_fair = demographic_parity_difference(
        None, models["fair"].predict(X_te), sensitive_features=a_te
    )  # type: ignore[attr-defined]
    assert dp_fair < dp_forest - 0.05

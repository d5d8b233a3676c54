"""Prediction time of TTTS/FairTTTS against scikit-learn's predict_proba and the official per-sample loop.

Every test measures its baseline in the same run and records the ratio in ``extra_info`` (and
prints it). Single-threaded: the papershelf plugin pins BLAS/OpenMP threads to 1 and the forest
uses ``n_jobs=1``. Setup: RandomForestClassifier(100 trees, scikit-learn defaults, fully grown) on
10 000 rows x 10 features (make_classification), predicting 1 000 rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fair_ttts import TTTSClassifier
from fair_ttts.functional import reference_predict_proba
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

N_REF_ROWS = 4  # the official-style loop runs on a few rows and is extrapolated per row


def _best(fn: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    X, y = make_classification(11_000, 10, n_informative=6, random_state=0)
    forest = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(
        X[:10_000], y[:10_000]
    )
    X_test = X[10_000:]
    return {
        "X_train": X[:10_000],
        "X_test": X_test,
        "forest": forest,
        "sklearn_s": _best(lambda: forest.predict_proba(X_test)),
    }


def _report(benchmark: Any, name: str, seconds: float, base: float, label: str) -> None:
    ratio = seconds / base
    benchmark.extra_info.update(
        {
            "seconds": seconds,
            f"ratio_to_{label}": ratio,
            "threads": os.environ.get("OMP_NUM_THREADS", "?"),
        }
    )
    print(f"\n{name}: {seconds * 1e3:.1f} ms = {ratio:.2f} x {label}")


CASES = {
    "exact_zero_flip": {"method": "exact", "p_max": 0.0},
    "exact_official_scale": {"method": "exact", "distance_scale": "tree_max_abs_threshold"},
    "mc100_official_scale": {"distance_scale": "tree_max_abs_threshold"},
    "mc100_feature_range": {},
    "mc1_feature_range": {"n_simulations": 1},
}


@pytest.mark.parametrize("case", list(CASES))
def test_vs_sklearn(benchmark: Any, setup: dict[str, Any], case: str) -> None:
    m = TTTSClassifier(setup["forest"], random_state=0, **CASES[case]).fit(setup["X_train"])
    X = setup["X_test"]
    benchmark.pedantic(m.predict_proba, args=(X,), rounds=3, iterations=1)
    _report(benchmark, case, benchmark.stats.stats.min, setup["sklearn_s"], "sklearn_predict_proba")


@pytest.mark.parametrize("case", ["mc100_feature_range", "mc100_official_scale"])
def test_vs_official_loop(benchmark: Any, setup: dict[str, Any], case: str) -> None:
    m = TTTSClassifier(setup["forest"], random_state=0, **CASES[case]).fit(setup["X_train"])
    X = setup["X_test"]
    X32 = X[:N_REF_ROWS].astype(np.float32).astype(np.float64)
    ref = _best(
        lambda: reference_predict_proba(
            m.forest_, X32, m.flip_params_, n_simulations=100, rng=np.random.default_rng(0)
        ),
        repeat=1,
    )
    loop_s = ref / N_REF_ROWS * X.shape[0]
    benchmark.pedantic(m.predict_proba, args=(X,), rounds=3, iterations=1)
    speedup = loop_s / benchmark.stats.stats.min
    benchmark.extra_info.update(
        {"official_loop_seconds_extrapolated": loop_s, "speedup_vs_official_loop": speedup}
    )
    print(
        f"\n{case}: official-style loop {loop_s:.1f} s (extrapolated from {N_REF_ROWS} rows), vectorised {benchmark.stats.stats.min:.2f} s -> {speedup:.0f}x faster"
    )

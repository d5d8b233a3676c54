"""Throughput of the groupwise reduction against one online ridge (and river, if installed).

Run with ``nox -s bench-groupwise-regret`` (BLAS pinned to 1 thread by the papershelf plugin).
Prints rows/second and ratios measured in the same run, and the cost per row against the number
of active groups (1, 5, 20, 80), which should grow linearly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from groupwise_regret import GroupwiseRegressor, OnlineRidge, synthetic_stream

RESULTS: dict[str, float] = {}
N_ROWS = 4000


@pytest.fixture(scope="module")
def stream() -> Any:
    return synthetic_stream(N_ROWS, 20, seed=21)


def _record(name: str, benchmark: Any) -> None:
    RESULTS[name] = float(benchmark.stats.stats.mean)


def test_single_online_ridge(benchmark: Any, stream: Any) -> None:
    benchmark.pedantic(
        lambda: OnlineRidge(1.0).progressive_predict(stream.X, stream.y), rounds=3, iterations=1
    )
    _record("single online ridge", benchmark)


def test_groupwise_ridge(benchmark: Any, stream: Any) -> None:
    def go() -> None:
        GroupwiseRegressor(OnlineRidge(1.0)).partial_fit(stream.X, stream.y, stream.membership)

    benchmark.pedantic(go, rounds=3, iterations=1)
    _record("groupwise (6 groups, 3 active per row)", benchmark)


def test_river_linear_regression(benchmark: Any, stream: Any) -> None:
    lm = pytest.importorskip("river.linear_model")
    rows = [dict(enumerate(x.tolist())) for x in stream.X]

    def go() -> None:
        model = lm.LinearRegression()
        for x, y in zip(rows, stream.y.tolist()):
            model.predict_one(x)
            model.learn_one(x, y)

    benchmark.pedantic(go, rounds=3, iterations=1)
    _record("river LinearRegression (SGD)", benchmark)


@pytest.mark.parametrize("k", [1, 5, 20, 80])
def test_active_groups_scaling(benchmark: Any, k: int) -> None:
    rng = np.random.default_rng(0)
    n = 1000
    X = rng.uniform(size=(n, 20))
    y = rng.uniform(size=n)
    A = np.ones((n, k), dtype=bool)

    def go() -> None:
        GroupwiseRegressor(OnlineRidge(1.0), always_on=False).partial_fit(X, y, A)

    benchmark.pedantic(go, rounds=2, iterations=1)
    _record(f"scaling k={k}", benchmark)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    """Print the ratios once every benchmark of the module has run (``--benchmark-only`` skips
    plain tests, so the report lives in a fixture's teardown)."""
    yield
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    base = RESULTS.get("single online ridge")
    print(
        f"\n\ngroupwise-regret throughput ({N_ROWS} synthetic rows, d=25, BLAS threads={threads})"
    )
    for name, sec in RESULTS.items():
        if name.startswith("scaling"):
            continue
        ratio = f"{sec / base:5.2f}x the single ridge's time" if base else ""
        print(f"  {name:42s} {N_ROWS / sec:10.0f} rows/s  {ratio}")
    one = RESULTS.get("scaling k=1")
    print("cost per row against active groups (1000 rows, d=20):")
    for k in (1, 5, 20, 80):
        sec = RESULTS.get(f"scaling k={k}")
        if sec is not None and one:
            print(
                f"  k={k:3d}: {1e6 * sec / 1000:8.1f} us/row  ({sec / one:5.1f}x k=1; linear would be {k}x)"
            )

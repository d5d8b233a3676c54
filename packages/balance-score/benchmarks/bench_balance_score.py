"""Speed at 10^6 and 10^7 samples, against a one-pass numpy floor and the peers, in one run.

Run with ``nox -s bench-balance-score``. Threads are pinned to one by the papershelf plugin; the
ratios printed at the end (time / one-pass floor, and netcal ECE / ours) are what the README reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import balance_score as bs
import numpy as np
import pytest

SIZES = [10**6, 10**7]
_RESULTS: dict[tuple[int, str], float] = {}


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"n={n:.0e}")
def data(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = request.param
    q = rng.random(n)
    y = (rng.random(n) < q**1.3).astype(np.int64)
    return y, q


def _one_pass(y: np.ndarray, q: np.ndarray) -> float:
    """The floor: one numpy expression that reads both inputs once (an unvalidated Brier one-liner)."""
    return float(np.mean((q - y) ** 2))


def _netcal_ece(y: np.ndarray, q: np.ndarray) -> float:
    from netcal.metrics import ECE

    return float(ECE(bins=10).measure(q, y))


def _torchmetrics_ece(y: np.ndarray, q: np.ndarray) -> float:
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    return float(
        binary_calibration_error(torch.from_numpy(q), torch.from_numpy(y), n_bins=10).item()
    )


def _sklearn_brier(y: np.ndarray, q: np.ndarray) -> float:
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(y, q))


CASES: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "one-pass floor": _one_pass,
    "balance_score": bs.balance_score,
    "ECE uniform (ours)": bs.expected_calibration_error,
    "brier_score (ours)": bs.brier_score,
    "sklearn brier_score_loss": _sklearn_brier,
    "torchmetrics binary ECE": _torchmetrics_ece,
    "netcal ECE": _netcal_ece,
}


@pytest.mark.parametrize("case", list(CASES))
def test_speed(benchmark: Any, data: tuple[np.ndarray, np.ndarray], case: str) -> None:
    y, q = data
    fn = CASES[case]
    fn(y, q)  # warm-up (imports)
    rounds = 1 if case == "netcal ECE" else 5
    benchmark.pedantic(fn, args=(y, q), rounds=rounds, iterations=1)
    _RESULTS[(y.size, case)] = benchmark.stats.stats.min


@pytest.fixture(scope="session", autouse=True)
def _report() -> Iterator[None]:
    yield
    import torch

    print(f"\nthreads: torch {torch.get_num_threads()}, OMP/MKL/OPENBLAS pinned to 1 by the plugin")
    for n in SIZES:
        floor = _RESULTS.get((n, "one-pass floor"))
        if not floor:
            continue
        print(f"n = {n:.0e}")
        for case in CASES:
            t = _RESULTS.get((n, case))
            if t is not None:
                print(f"  {case:26s} {t * 1e3:10.2f} ms   {t / floor:6.2f} x floor")
        ours, netcal = _RESULTS.get((n, "ECE uniform (ours)")), _RESULTS.get((n, "netcal ECE"))
        if ours and netcal:
            print(f"  netcal ECE / ours: {netcal / ours:.1f} x")

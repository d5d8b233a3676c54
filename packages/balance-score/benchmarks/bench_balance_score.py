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


def _sklearn_isotonic(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip").fit(q, y).predict(q)


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
    "corp_decomposition (ours)": bs.corp_decomposition,
    "sklearn IsotonicRegression": _sklearn_isotonic,
}

#: rounds per case: the minimum is reported. The machine may be shared: a call that another
#: process preempts costs a whole scheduler slice (~4 ms), so the short cases need many rounds
#: for the minimum to be a preemption-free time (200 at 10^6, 40 at 10^7 unless listed here).
ROUNDS = {
    "netcal ECE": 1,
    "torchmetrics binary ECE": 3,
    "sklearn brier_score_loss": 5,
    "corp_decomposition (ours)": 3,
    "sklearn IsotonicRegression": 2,
}


@pytest.mark.parametrize("case", list(CASES))
def test_speed(benchmark: Any, data: tuple[np.ndarray, np.ndarray], case: str) -> None:
    y, q = data
    fn = CASES[case]
    fn(y, q)  # warm-up (imports)
    rounds = ROUNDS.get(case, 200 if y.size <= 10**6 else 40)
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

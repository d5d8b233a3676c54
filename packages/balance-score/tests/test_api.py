"""Streaming classes against the functional forms (MetricSuite), torch input, sklearn scorer,
lazy imports, README blocks, registry record and the plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import balance_score as bs
import numpy as np
import pytest

from papershelf.testing import MetricSuite, run_readme_blocks

from .conftest import make_problem

README = Path(__file__).resolve().parents[1] / "README.md"


def _weighted_inputs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    y, q = make_problem(rng, n, power=1.6)
    q[: max(1, n // 10)] = np.round(q[: max(1, n // 10)], 1)  # some scores exactly on bin edges
    return y, q, rng.random(n) + 0.05


def _balance_reference(y: np.ndarray, q: np.ndarray, w: np.ndarray) -> float:
    correct = (q >= 0.5).astype(int) == y
    return float(np.sum(w * (correct - np.maximum(q, 1 - q))) / np.sum(w))


def _ece_reference(y: np.ndarray, q: np.ndarray, w: np.ndarray) -> float:
    _, edges = np.histogram(q, bins=10, range=(0, 1), weights=w)
    ysum, _ = np.histogram(q, bins=edges, weights=w * y)
    qsum, _ = np.histogram(q, bins=edges, weights=w * q)
    return float(np.sum(np.abs(ysum - qsum)) / np.sum(w))


def _brier_reference(y: np.ndarray, q: np.ndarray, w: np.ndarray) -> float:
    return float(np.average((q - y) ** 2, weights=w))


class TestBalanceScoreMetric(MetricSuite):
    functional = staticmethod(lambda y, q, w: bs.balance_score(y, q, sample_weight=w))
    reference = staticmethod(_balance_reference)
    metric_cls = bs.BalanceScore

    def make_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        return _weighted_inputs(rng, n)


class TestCalibrationErrorMetric(MetricSuite):
    functional = staticmethod(lambda y, q, w: bs.expected_calibration_error(y, q, sample_weight=w))
    reference = staticmethod(_ece_reference)
    metric_cls = bs.CalibrationError

    def make_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        return _weighted_inputs(rng, n)


class TestTopLabelL2Metric(MetricSuite):
    functional = staticmethod(
        lambda y, q: bs.expected_calibration_error(y, q, n_bins=7, norm="l2", mode="top_label")
    )
    metric_cls = staticmethod(lambda: bs.CalibrationError(n_bins=7, norm="l2", mode="top_label"))

    def make_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        return _weighted_inputs(rng, n)[:2]


class TestBrierScoreMetric(MetricSuite):
    functional = staticmethod(lambda y, q, w: bs.brier_score(y, q, sample_weight=w))
    reference = staticmethod(_brier_reference)
    metric_cls = bs.BrierScore

    def make_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        return _weighted_inputs(rng, n)


def test_torch_tensors_accepted(rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    y, q = make_problem(rng, 300, power=1.5)
    yt, qt = torch.from_numpy(y), torch.from_numpy(q).float()
    expected = bs.balance_score(y, q.astype(np.float32))
    assert bs.balance_score(yt, qt) == pytest.approx(expected, abs=1e-12)
    m = bs.BalanceScore()
    m.update(yt[:100], qt[:100].requires_grad_())
    m.update(yt[100:].unsqueeze(1), qt[100:].unsqueeze(1).bfloat16().float())
    assert m.n_samples == 300
    assert bs.brier_score(yt, torch.stack([1 - qt, qt], dim=1)) == pytest.approx(
        bs.brier_score(y, q.astype(np.float32)), abs=1e-6
    )


def test_make_scorer(rng: np.random.Generator) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import make_scorer

    X = rng.standard_normal((300, 3))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    scorer = make_scorer(
        bs.abs_balance_score, greater_is_better=False, response_method="predict_proba"
    )
    assert scorer(model, X, y) == pytest.approx(
        -abs(bs.balance_score(y, model.predict_proba(X))), abs=1e-15
    )


def test_import_is_light() -> None:
    code = (
        "import sys, balance_score as bs; bs.balance_score([0, 1], [0.2, 0.9]); "
        "bs.CalibrationError(); bs.smooth_calibration_error([0, 1], [0.2, 0.9]); "
        "bad = [m for m in ('torch', 'matplotlib', 'sklearn', 'scipy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api() -> None:
    assert set(bs.__all__) <= set(dir(bs))
    for name in bs.__all__:
        assert getattr(bs, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bs.nope  # noqa: B018


def test_registry_record() -> None:
    from papershelf import get_method

    info = get_method("balance-score")
    assert info.arxiv == "2309.06248" and info.kind == "metric"
    assert callable(info.load_demo())


def test_plot_reliability_diagram(rng: np.random.Generator) -> None:
    pytest.importorskip("matplotlib")
    y, q = make_problem(rng, 500, power=2.0)
    for mode in ("positive", "top_label"):
        ax: Any = bs.plot_reliability_diagram(bs.reliability_diagram(y, q, mode=mode), label=mode)
        assert len(ax.lines) == 2
        ax.figure.clf()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_readme_blocks_run() -> None:
    assert len(run_readme_blocks(README)) >= 2

"""Agreement with independent implementations: netcal, torchmetrics, scikit-learn, relplot."""

from __future__ import annotations

import balance_score as bs
import numpy as np
import pytest

from .conftest import make_problem


def _off_edges(rng: np.random.Generator, n: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    y, q = make_problem(rng, n, power=power)
    q = np.round(q, 6) + 3.7e-8  # never exactly on a bin edge (peers disagree on edges and on 1.0)
    return y, q


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_positive_ece_matches_netcal_and_torchmetrics(
    rng: np.random.Generator, n_bins: int
) -> None:
    torch = pytest.importorskip("torch")
    from netcal.metrics import ECE
    from torchmetrics.functional.classification import binary_calibration_error

    y, q = _off_edges(rng, 3000, 1.7)
    ours = bs.expected_calibration_error(y, q, n_bins=n_bins)
    assert ours == pytest.approx(ECE(bins=n_bins).measure(q, y), rel=1e-10)
    for norm in ("l1", "l2", "max"):
        theirs = binary_calibration_error(
            torch.from_numpy(q), torch.from_numpy(y), n_bins=n_bins, norm=norm
        ).item()
        assert bs.expected_calibration_error(y, q, n_bins=n_bins, norm=norm) == pytest.approx(
            theirs, rel=1e-9
        )


def test_quantile_ece_and_ace_match_netcal(rng: np.random.Generator) -> None:
    from netcal.metrics import ACE, ECE

    for n_bins in (3, 10, 20):
        y, q = _off_edges(rng, 2500, 0.6)
        ours = bs.expected_calibration_error(y, q, n_bins=n_bins, strategy="quantile")
        assert ours == pytest.approx(
            ECE(bins=n_bins, equal_intervals=False).measure(q, y), rel=1e-10
        )
        ace = bs.adaptive_calibration_error(y, q, n_bins=n_bins)
        assert ace == pytest.approx(
            ACE(bins=n_bins, equal_intervals=False).measure(q, y), rel=1e-10
        )


@pytest.mark.parametrize("n_bins", [1, 4, 15])
def test_top_label_ece_matches_torchmetrics_multiclass(
    rng: np.random.Generator, n_bins: int
) -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    y, q = _off_edges(rng, 3000, 2.0)
    probs = torch.from_numpy(np.column_stack([1 - q, q]))
    theirs = multiclass_calibration_error(
        probs, torch.from_numpy(y), num_classes=2, n_bins=n_bins
    ).item()
    # torchmetrics computes multiclass confidences in float32
    assert bs.expected_calibration_error(y, q, n_bins=n_bins, mode="top_label") == pytest.approx(
        theirs, rel=2e-5, abs=2e-6
    )
    if n_bins == 1:  # |Balance| is the one-bin top-label ECE
        assert abs(bs.balance_score(y, q)) == pytest.approx(theirs, rel=2e-5, abs=2e-6)


def test_reliability_diagram_matches_sklearn_calibration_curve(rng: np.random.Generator) -> None:
    from sklearn.calibration import calibration_curve

    y, q = _off_edges(rng, 4000, 1.3)
    d = bs.reliability_diagram(y, q, n_bins=8)
    prob_true, prob_pred = calibration_curve(y, q, n_bins=8)
    full = d.weight > 0
    np.testing.assert_allclose(d.mean_outcome[full], prob_true, rtol=1e-12)
    np.testing.assert_allclose(d.mean_score[full], prob_pred, rtol=1e-12)


def test_brier_matches_sklearn(rng: np.random.Generator) -> None:
    from sklearn.metrics import brier_score_loss

    y, q = make_problem(rng, 1000, power=1.4)
    w = rng.random(1000)
    assert bs.brier_score(y, q) == pytest.approx(brier_score_loss(y, q), abs=1e-15)
    assert bs.brier_score(y, q, sample_weight=w) == pytest.approx(
        brier_score_loss(y, q, sample_weight=w), abs=1e-15
    )
    labels = np.where(y == 1, "spam", "ham")
    assert bs.brier_score(labels, q, pos_label="spam") == pytest.approx(
        brier_score_loss(labels, q, pos_label="spam"), abs=1e-15
    )


def test_isotonic_recalibration_matches_sklearn(rng: np.random.Generator) -> None:
    from sklearn.isotonic import IsotonicRegression

    y, q = make_problem(rng, 3000, power=1.8)
    q = np.round(q, 2)  # many ties
    w = rng.random(3000) + 0.1
    ref = IsotonicRegression(out_of_bounds="clip").fit(q, y, sample_weight=w).predict(q)
    c = bs.corp_decomposition(y, q, sample_weight=w)
    np.testing.assert_allclose(c.recalibrated, ref, atol=1e-12)


@pytest.mark.parametrize("sigma", [None, 0.02, 0.1, 0.5])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_smooth_ece_matches_relplot(
    rng: np.random.Generator, sigma: float | None, power: float
) -> None:
    relplot = pytest.importorskip("relplot")  # the authors' implementation (apple/ml-calibration)

    y, q = make_problem(rng, 2000, power=power)
    if sigma is None:
        ours, bw = bs.smooth_calibration_error(y, q, return_sigma=True)
        theirs, theirs_bw = relplot.smECE(q, y, return_width=True)
        assert bw == theirs_bw
    else:
        ours, theirs = (
            bs.smooth_calibration_error(y, q, sigma=sigma),
            relplot.smECE_sigma(q, y, sigma),
        )
    assert ours == pytest.approx(theirs, rel=1e-9)

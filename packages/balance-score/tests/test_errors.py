"""Every bad input raises ValueError/TypeError naming the argument (and the value)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import balance_score as bs
import numpy as np
import pytest

Y = np.array([0, 1, 1, 0])
Q = np.array([0.2, 0.7, 0.5, 0.4])

METRICS: list[Callable[..., Any]] = [
    bs.balance_score,
    bs.abs_balance_score,
    bs.balance_gain,
    bs.expected_calibration_error,
    bs.adaptive_calibration_error,
    bs.smooth_calibration_error,
    bs.brier_score,
    bs.brier_decomposition,
    bs.corp_decomposition,
    bs.reliability_diagram,
]

BAD = [
    (Y, [0.2, 0.7, np.nan, 0.4], ValueError, r"y_prob contains NaN .*index 2"),
    (Y, [0.2, 1.2, 0.5, 0.4], ValueError, r"y_prob must lie in \[0, 1\].*1\.2.*index 1"),
    (Y, [-0.1, 0.7, 0.5, 0.4], ValueError, r"y_prob must lie in \[0, 1\]"),
    (Y, [0.2, np.inf, 0.5, 0.4], ValueError, r"y_prob must lie in \[0, 1\]"),
    (Y, [0.2, 0.7, 0.5], ValueError, r"different lengths: 4 and 3"),
    ([], [], ValueError, r"y_prob is empty"),
    (Y, np.ones((4, 3)) / 3, ValueError, r"y_prob must be 1-D .* shape \(4, 3\)"),
    (Y, np.zeros((4, 2, 1)), ValueError, r"y_prob must be 1-D"),
    (
        Y,
        np.column_stack([Q, Q]),
        ValueError,
        r"y_prob has two columns but its rows do not sum to 1",
    ),
    (Y, np.array(["a", "b", "c", "d"]), TypeError, r"y_prob must hold real numbers"),
    (Y, "0.5", TypeError, r"y_prob must be array-like"),
    ([0, 1, 2, 0], Q, ValueError, r"y_true must be binary, got 3 distinct labels"),
    ([0, 2, 2, 0], Q, ValueError, r"y_true has labels \[0, 2\].*pass pos_label"),
    ([0.0, 1.0, np.nan, 0.0], Q, ValueError, r"y_true contains NaN"),
    ([0.0, 0.5, 1.0, 0.0], Q, ValueError, r"y_true must be binary|y_true has labels"),
    (["a", "b", "a", "b"], Q, ValueError, r"y_true has non-numeric labels.*pos_label"),
    (np.zeros((4, 2)), Q, ValueError, r"y_true must be 1-D"),
]


@pytest.mark.parametrize("fn", METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("y", "q", "exc", "match"), BAD)
def test_bad_inputs(
    fn: Callable[..., Any], y: Any, q: Any, exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        fn(y, q)


def test_pos_label_not_present() -> None:
    with pytest.raises(ValueError, match=r"pos_label='spam' is not one of the labels"):
        bs.balance_score(["x", "y", "x", "y"], Q, pos_label="spam")


@pytest.mark.parametrize(
    ("weight", "exc", "match"),
    [
        ([1.0, 1.0, 1.0], ValueError, r"sample_weight must be 1-D of length 4"),
        (
            [1.0, -1.0, 1.0, 1.0],
            ValueError,
            r"sample_weight must be finite and non-negative.*-1\.0",
        ),
        ([1.0, np.nan, 1.0, 1.0], ValueError, r"sample_weight must be finite"),
        ([0.0, 0.0, 0.0, 0.0], ValueError, r"sample_weight sums to 0"),
        (["a", "b", "c", "d"], TypeError, r"sample_weight must hold real numbers"),
    ],
)
def test_bad_weights(weight: Any, exc: type[Exception], match: str) -> None:
    for fn in (
        bs.balance_score,
        bs.expected_calibration_error,
        bs.brier_score,
        bs.corp_decomposition,
    ):
        with pytest.raises(exc, match=match):
            fn(Y, Q, sample_weight=weight)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"threshold": 1.5}, ValueError, r"threshold must lie in \[0, 1\], got 1\.5"),
        ({"threshold": float("nan")}, ValueError, r"threshold must lie in \[0, 1\]"),
        ({"threshold": "0.5"}, TypeError, r"threshold must be a real number"),
        ({"threshold": True}, TypeError, r"threshold must be a real number"),
    ],
)
def test_bad_threshold(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    for fn in (bs.balance_score, bs.balance_gain, bs.abs_balance_score):
        with pytest.raises(exc, match=match):
            fn(Y, Q, **kwargs)
    with pytest.raises(exc, match=match):
        bs.BalanceScore(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_bins": 0}, ValueError, r"n_bins must be an int >= 1, got 0"),
        ({"n_bins": 2.5}, TypeError, r"n_bins must be an int"),
        (
            {"strategy": "kmeans"},
            ValueError,
            r"strategy must be one of \('uniform', 'quantile'\), got 'kmeans'",
        ),
        ({"norm": "l3"}, ValueError, r"norm must be one of \('l1', 'l2', 'max'\), got 'l3'"),
        (
            {"mode": "classwise"},
            ValueError,
            r"mode must be one of \('positive', 'top_label'\), got 'classwise'",
        ),
    ],
)
def test_bad_ece_options(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        bs.expected_calibration_error(Y, Q, **kwargs)


def test_bad_options_elsewhere() -> None:
    with pytest.raises(ValueError, match=r"sigma must lie in \(0, 1\], got 0"):
        bs.smooth_calibration_error(Y, Q, sigma=0)
    with pytest.raises(TypeError, match=r"sigma must be a float"):
        bs.smooth_calibration_error(Y, Q, sigma="auto")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"eps must be a float in \[0, 1\)"):
        bs.smooth_calibration_error(Y, Q, eps=2.0)
    with pytest.raises(ValueError, match=r"mode must be one of"):
        bs.smooth_calibration_error(Y, Q, mode="top")
    with pytest.raises(ValueError, match=r"strategy must be one of"):
        bs.brier_decomposition(Y, Q, strategy="equal")
    with pytest.raises(ValueError, match=r"norm must be one of"):
        bs.true_calibration_error(Q, Q, norm="l0")
    with pytest.raises(ValueError, match=r"p_true must lie in \[0, 1\]"):
        bs.true_calibration_error([2.0, 0.1, 0.1, 0.1], Q)
    with pytest.raises(ValueError, match=r"p_true and y_prob have different lengths: 3 and 4"):
        bs.expected_balance_score([0.1, 0.1, 0.1], Q)
    with pytest.raises(ValueError, match=r"norm must be one of"):
        bs.reliability_diagram(Y, Q).calibration_error("l4")
    with pytest.raises(TypeError, match=r"diagram must be a ReliabilityDiagram"):
        bs.plot_reliability_diagram((Y, Q))  # type: ignore[arg-type]


def test_streaming_errors() -> None:
    m = bs.BalanceScore()
    with pytest.raises(ValueError, match=r"BalanceScore.compute\(\) called before any update\(\)"):
        m.compute()
    with pytest.raises(ValueError, match=r"y_prob must lie in \[0, 1\]"):
        m.update(Y, Q + 1)
    assert m.n_samples == 0  # a rejected batch leaves the state untouched
    with pytest.raises(ValueError, match=r"n_bins must be an int >= 1"):
        bs.CalibrationError(n_bins=0)
    with pytest.raises(ValueError, match=r"norm must be one of"):
        bs.CalibrationError(norm="l3")
    with pytest.raises(ValueError, match=r"BrierScore.compute\(\)"):
        bs.BrierScore().compute()

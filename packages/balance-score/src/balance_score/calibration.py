"""Binned calibration errors and reliability-diagram data for binary classifiers.

Two things can be binned (``mode``):

* ``"positive"`` — the reliability of P(positive): score :math:`s_i = q_i`, outcome
  :math:`y_i`. What ``sklearn.calibration.calibration_curve``, netcal (binary input) and
  torchmetrics ``BinaryCalibrationError`` measure.
* ``"top_label"`` — confidence calibration (Guo et al., 2017): :math:`s_i = \\max(q_i, 1 - q_i)`,
  outcome :math:`1\\{\\hat y_i = y_i\\}` with :math:`\\hat y_i = 1\\{q_i \\ge 0.5\\}`; what
  torchmetrics ``MulticlassCalibrationError(num_classes=2)`` measures on ``[1 − q, q]``.

With bins :math:`B_b`, weights :math:`W_b = \\sum_{i \\in B_b} w_i`, :math:`W = \\sum_b W_b` and the
per-bin gap :math:`\\Delta_b = \\bar o_b - \\bar s_b` (mean outcome minus mean score):

.. math::

    \\mathrm{ECE}_{\\ell_1} = \\sum_b \\frac{W_b}{W} |\\Delta_b|, \\quad
    \\mathrm{ECE}_{\\ell_2} = \\Big(\\sum_b \\frac{W_b}{W} \\Delta_b^2\\Big)^{1/2}, \\quad
    \\mathrm{MCE} = \\max_{b: W_b > 0} |\\Delta_b|.

Bins are ``[e_k, e_{k+1})`` with the last closed, so 0 and 1 are each counted exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from balance_score._binning import (
    UncheckedInput,
    bin_edges,
    binned_sums,
    gap_norm,
    scores_and_residuals,
)
from balance_score._validation import check_binary_raw, check_choice, check_int

FloatArray = NDArray[np.float64]

STRATEGIES = ("uniform", "quantile")
NORMS = ("l1", "l2", "max")
MODES = ("positive", "top_label")


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin data of a reliability diagram (arrays of length ``n_bins``, empty bins included).

    Attributes:
        edges: the ``n_bins + 1`` bin edges.
        weight: total sample weight per bin (the count without weights).
        mean_score: mean predicted score per bin (NaN for empty bins).
        mean_outcome: observed frequency per bin (NaN for empty bins): the fraction of positives
            (``mode="positive"``) or the accuracy (``mode="top_label"``).
        mode: ``"positive"`` or ``"top_label"``.
    """

    edges: FloatArray
    weight: FloatArray
    mean_score: FloatArray
    mean_outcome: FloatArray
    mode: str

    @property
    def n_bins(self) -> int:
        return int(self.weight.shape[0])

    @property
    def gap(self) -> FloatArray:
        """Observed minus predicted per bin: negative where the model is over-confident."""
        return self.mean_outcome - self.mean_score

    def calibration_error(self, norm: str = "l1") -> float:
        """The ECE of these bins (``l1``, ``l2`` or ``max``)."""
        check_choice(norm, "norm", NORMS)
        resid = np.where(self.weight > 0, self.gap, 0.0) * self.weight
        return gap_norm(self.weight, resid, norm, float(self.weight.sum()))


def _prepare(
    y_true: Any,
    y_prob: Any,
    n_bins: Any,
    strategy: str,
    mode: str,
    pos_label: Any,
    sample_weight: Any,
) -> tuple[NDArray[Any], FloatArray, FloatArray | None, FloatArray, float]:
    """Validated ``(y, q, w, edges, total weight)``; ``y`` 0/1 labels of any real dtype."""
    m = check_int(n_bins, "n_bins")
    check_choice(strategy, "strategy", STRATEGIES)
    check_choice(mode, "mode", MODES)
    y, q, w = check_binary_raw(y_true, y_prob, pos_label=pos_label, sample_weight=sample_weight)
    if strategy == "uniform":
        edges = bin_edges(q, m, strategy)
    else:
        edges = bin_edges(scores_and_residuals(y, q, mode)[0], m, strategy, w)
    total = float(q.shape[0]) if w is None else float(w.sum())
    return y, q, w, edges, total


def reliability_diagram(
    y_true: Any,
    y_prob: Any,
    *,
    n_bins: int = 10,
    strategy: str = "uniform",
    mode: str = "positive",
    pos_label: Any = None,
    sample_weight: Any = None,
) -> ReliabilityDiagram:
    """Reliability-diagram data. Unlike ``sklearn.calibration.calibration_curve``, empty bins are
    kept (with NaN means and weight 0), so arrays always align with ``edges``.

    Arguments as in :func:`expected_calibration_error`.
    """
    y, q, w, edges, _ = _prepare(y_true, y_prob, n_bins, strategy, mode, pos_label, sample_weight)
    weight, rsum, ssum = binned_sums(y, q, w, edges, mode, scores=True)
    assert weight is not None and ssum is not None
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.where(weight > 0, ssum / weight, np.nan)
        mean_outcome = np.where(weight > 0, (ssum + rsum) / weight, np.nan)
    return ReliabilityDiagram(edges, weight, mean_score, mean_outcome, mode)


def expected_calibration_error(
    y_true: Any,
    y_prob: Any,
    *,
    n_bins: int = 10,
    strategy: str = "uniform",
    norm: str = "l1",
    mode: str = "positive",
    pos_label: Any = None,
    sample_weight: Any = None,
) -> float:
    """Binned expected calibration error (see the module docstring for the formulas).

    Args:
        y_true: binary labels (see :func:`balance_score.balance_score`).
        y_prob: P(positive), 1-D, or two-column ``predict_proba`` output.
        n_bins: number of bins M.
        strategy: ``"uniform"`` (equal width, edges ``linspace(0, 1, M + 1)``) or ``"quantile"``
            (equal mass; edges that collapse on tied scores are merged). With ``sample_weight``
            the quantile edges are weighted quantiles (equal weight mass per bin; see
            :func:`balance_score._binning.weighted_quantile`), equal to the unweighted edges
            when all weights are equal.
        norm: ``"l1"`` (ECE), ``"l2"`` (RMSCE) or ``"max"`` (MCE).
        mode: ``"positive"`` (reliability of P(positive)) or ``"top_label"`` (confidence).
        pos_label: the positive label (default 1).
        sample_weight: optional non-negative weights.

    Note:
        The binned estimate is biased upward for a calibrated model at small n (each bin's
        |gap| is at least its sampling noise); that bias is what the Balance paper criticises.
    """
    check_choice(norm, "norm", NORMS)
    if (
        strategy == "uniform"
        and pos_label is None
        and sample_weight is None
        and isinstance(y_prob, np.ndarray)
        and isinstance(y_true, np.ndarray)
        and y_prob.ndim == 1
        and y_prob.dtype == np.float64
        and y_true.ndim == 1
        and y_true.dtype.kind in "biu"
        and 0 < y_prob.shape[0] == y_true.shape[0]
    ):
        # the common large case: range checks fused into the chunked kernel (same results; on
        # any failing chunk, the usual validation below raises its error or converts labels)
        m = check_int(n_bins, "n_bins")
        check_choice(mode, "mode", MODES)
        try:
            weight, rsum, _ = binned_sums(
                y_true,
                y_prob,
                None,
                bin_edges(y_prob, m, "uniform"),
                mode,
                weights=norm != "l1",
                check=True,
            )
            return gap_norm(weight, rsum, norm, float(y_prob.shape[0]))
        except UncheckedInput:
            pass
    y, q, w, edges, total = _prepare(
        y_true, y_prob, n_bins, strategy, mode, pos_label, sample_weight
    )
    weight, rsum, _ = binned_sums(y, q, w, edges, mode, weights=norm != "l1")
    return gap_norm(weight, rsum, norm, total)


def adaptive_calibration_error(
    y_true: Any,
    y_prob: Any,
    *,
    n_bins: int = 10,
    mode: str = "positive",
    pos_label: Any = None,
    sample_weight: Any = None,
) -> float:
    """Adaptive calibration error (Nixon et al., 2019): the *unweighted* mean of
    :math:`|\\Delta_b|` over the non-empty equal-mass (quantile) bins,
    :math:`\\frac{1}{|\\{b: W_b > 0\\}|}\\sum_{b: W_b > 0} |\\bar o_b - \\bar s_b|`.
    """
    y, q, w, edges, _ = _prepare(y_true, y_prob, n_bins, "quantile", mode, pos_label, sample_weight)
    weight, rsum, _ = binned_sums(y, q, w, edges, mode)
    assert weight is not None
    full = weight > 0
    return float(np.mean(np.abs(rsum[full]) / weight[full]))


__all__ = [
    "ReliabilityDiagram",
    "adaptive_calibration_error",
    "expected_calibration_error",
    "reliability_diagram",
]

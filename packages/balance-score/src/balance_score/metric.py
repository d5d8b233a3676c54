"""Streaming metrics for training and evaluation loops: ``update`` per batch, ``compute`` at the end.

Each class keeps a few running sums, so a metric accumulated over any split into batches equals
the one-shot value of the functional form to rounding. Batches may be numpy arrays, lists or torch
tensors (any device; they are detached and copied to the CPU) — torch itself is never imported.

Example::

    metric = BalanceScore()
    for xb, yb in loader:
        metric.update(yb, torch.sigmoid(model(xb)))
    print(metric.compute())     # < 0: over-confident
    metric.reset()
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from balance_score._binning import bin_edges, binned_sums, gap_norm
from balance_score._validation import check_binary_raw, check_choice, check_int, check_threshold
from balance_score.brier import _squared_error_sum
from balance_score.functional import _gain_sum

FloatArray = NDArray[np.float64]


class _Streaming:
    """Shared plumbing: validation of each batch, weight total and the empty-state check."""

    def __init__(self, pos_label: Any = None) -> None:
        self.pos_label = pos_label
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.total_weight = 0.0
        self.n_samples = 0

    def _batch(
        self, y_true: Any, y_prob: Any, sample_weight: Any
    ) -> tuple[NDArray[Any], FloatArray, FloatArray | None]:
        y, q, w = check_binary_raw(
            y_true, y_prob, pos_label=self.pos_label, sample_weight=sample_weight
        )
        self.n_samples += int(q.shape[0])
        self.total_weight += float(q.shape[0]) if w is None else float(w.sum())
        return y, q, w

    def _check_ready(self) -> None:
        if self.n_samples == 0:
            raise ValueError(f"{type(self).__name__}.compute() called before any update()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_samples={self.n_samples})"


class BalanceScore(_Streaming):
    """Streaming Balance score (:func:`balance_score.balance_score`); negative = over-confident.

    Args:
        threshold: decision threshold t (paper: 0.5).
        pos_label: the positive label (default 1).
    """

    def __init__(self, threshold: float = 0.5, pos_label: Any = None) -> None:
        self.threshold = check_threshold(threshold)
        super().__init__(pos_label)

    def reset(self) -> None:
        super().reset()
        self.gain_sum = 0.0

    def update(self, y_true: Any, y_prob: Any, sample_weight: Any = None) -> None:
        """Add one batch (labels, P(positive) or two-column proba, optional weights)."""
        y, q, w = self._batch(y_true, y_prob, sample_weight)
        self.gain_sum += _gain_sum(y, q, self.threshold, w)

    def compute(self) -> float:
        """Balance over everything seen since the last reset."""
        self._check_ready()
        return self.gain_sum / self.total_weight


class CalibrationError(_Streaming):
    """Streaming equal-width binned calibration error (:func:`balance_score.expected_calibration_error`
    with ``strategy="uniform"``; equal-mass bins need all scores at once and cannot stream).

    Args:
        n_bins: number of equal-width bins on [0, 1].
        norm: ``"l1"`` (ECE), ``"l2"`` (RMSCE) or ``"max"`` (MCE).
        mode: ``"positive"`` or ``"top_label"``.
        pos_label: the positive label (default 1).
    """

    def __init__(
        self, n_bins: int = 10, norm: str = "l1", mode: str = "positive", pos_label: Any = None
    ) -> None:
        self.n_bins = check_int(n_bins, "n_bins")
        self.norm = check_choice(norm, "norm", ("l1", "l2", "max"))
        self.mode = check_choice(mode, "mode", ("positive", "top_label"))
        self.edges = bin_edges(np.empty(0), self.n_bins, "uniform")
        super().__init__(pos_label)

    def reset(self) -> None:
        super().reset()
        self.bin_weight = np.zeros(self.n_bins)
        self.bin_residual = np.zeros(self.n_bins)

    def update(self, y_true: Any, y_prob: Any, sample_weight: Any = None) -> None:
        """Add one batch (labels, P(positive) or two-column proba, optional weights)."""
        y, q, w = self._batch(y_true, y_prob, sample_weight)
        weight, rsum, _ = binned_sums(y, q, w, self.edges, self.mode)
        assert weight is not None
        self.bin_weight += weight
        self.bin_residual += rsum

    def compute(self) -> float:
        """The calibration error over everything seen since the last reset."""
        self._check_ready()
        return gap_norm(self.bin_weight, self.bin_residual, self.norm, self.total_weight)


class BrierScore(_Streaming):
    """Streaming Brier score (:func:`balance_score.brier_score`).

    Args:
        pos_label: the positive label (default 1).
    """

    def reset(self) -> None:
        super().reset()
        self.squared_error_sum = 0.0

    def update(self, y_true: Any, y_prob: Any, sample_weight: Any = None) -> None:
        """Add one batch (labels, P(positive) or two-column proba, optional weights)."""
        y, q, w = self._batch(y_true, y_prob, sample_weight)
        self.squared_error_sum += _squared_error_sum(y, q, w)

    def compute(self) -> float:
        """The Brier score over everything seen since the last reset."""
        self._check_ready()
        return self.squared_error_sum / self.total_weight


__all__ = ["BalanceScore", "BrierScore", "CalibrationError"]

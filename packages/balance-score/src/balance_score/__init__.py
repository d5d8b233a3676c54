"""balance-score: the Balance score (Choi, Kim & Lee, 2023, arXiv:2309.06248) and a complete
binary-calibration toolkit (binned, adaptive and smooth ECE, Brier decompositions, reliability
diagrams, streaming metrics). numpy only; matplotlib and torch are optional.

Sign convention everywhere: **negative Balance = over-confident**, positive = under-confident.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from balance_score.brier import (
        BrierDecomposition,
        CORPDecomposition,
        brier_decomposition,
        brier_score,
        corp_decomposition,
    )
    from balance_score.calibration import (
        ReliabilityDiagram,
        adaptive_calibration_error,
        expected_calibration_error,
        reliability_diagram,
    )
    from balance_score.functional import (
        abs_balance_score,
        balance_gain,
        balance_score,
        expected_balance_score,
        true_calibration_error,
    )
    from balance_score.metric import BalanceScore, BrierScore, CalibrationError
    from balance_score.plotting import plot_reliability_diagram
    from balance_score.smooth import smooth_calibration_error

_EXPORTS = {
    "abs_balance_score": ".functional",
    "balance_gain": ".functional",
    "balance_score": ".functional",
    "expected_balance_score": ".functional",
    "true_calibration_error": ".functional",
    "ReliabilityDiagram": ".calibration",
    "adaptive_calibration_error": ".calibration",
    "expected_calibration_error": ".calibration",
    "reliability_diagram": ".calibration",
    "smooth_calibration_error": ".smooth",
    "BrierDecomposition": ".brier",
    "CORPDecomposition": ".brier",
    "brier_decomposition": ".brier",
    "brier_score": ".brier",
    "corp_decomposition": ".brier",
    "BalanceScore": ".metric",
    "BrierScore": ".metric",
    "CalibrationError": ".metric",
    "plot_reliability_diagram": ".plotting",
}

try:
    __version__ = version("balance-score")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = [
    "BalanceScore",
    "BrierDecomposition",
    "BrierScore",
    "CORPDecomposition",
    "CalibrationError",
    "ReliabilityDiagram",
    "__version__",
    "abs_balance_score",
    "adaptive_calibration_error",
    "balance_gain",
    "balance_score",
    "brier_decomposition",
    "brier_score",
    "corp_decomposition",
    "expected_balance_score",
    "expected_calibration_error",
    "plot_reliability_diagram",
    "reliability_diagram",
    "smooth_calibration_error",
    "true_calibration_error",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, eager={"__version__": __version__})

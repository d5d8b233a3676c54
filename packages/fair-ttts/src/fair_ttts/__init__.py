"""TTTS and FairTTTS: tree test-time simulation for scikit-learn trees and forests.

FairTTTS (Cohen-Inger, Rokach, Shapira & Cohen, 2025, arXiv:2501.08155) post-processes a fitted
decision tree or forest: at prediction time each sample walks down the trees at random, flipping
to the other child with a small probability, and that probability is boosted at splits on the
protected attribute where an unprivileged sample would go to the less favourable child. TTTS
(Cohen, Arbili, Mirsky & Rokach, AAAI 2024) is the same walk without the boost.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from fair_ttts.datasets import (
        FairnessDataset,
        load_diabetes_sex,
        load_german_credit,
        make_biased_classification,
    )
    from fair_ttts.estimators import FairnessBoostWarning, FairTTTSClassifier, TTTSClassifier
    from fair_ttts.metrics import (
        GroupSummary,
        demographic_parity_difference,
        demographic_parity_ratio,
        disparate_impact,
        equal_opportunity_difference,
        equalized_odds_difference,
        fairness_report,
        group_summary,
        statistical_parity_difference,
    )

_EXPORTS = {
    "TTTSClassifier": ".estimators",
    "FairTTTSClassifier": ".estimators",
    "FairnessBoostWarning": ".estimators",
    "FairnessDataset": ".datasets",
    "make_biased_classification": ".datasets",
    "load_german_credit": ".datasets",
    "load_diabetes_sex": ".datasets",
    "GroupSummary": ".metrics",
    "group_summary": ".metrics",
    "demographic_parity_difference": ".metrics",
    "demographic_parity_ratio": ".metrics",
    "equal_opportunity_difference": ".metrics",
    "equalized_odds_difference": ".metrics",
    "disparate_impact": ".metrics",
    "statistical_parity_difference": ".metrics",
    "fairness_report": ".metrics",
}

__all__ = [
    "FairTTTSClassifier",
    "FairnessBoostWarning",
    "FairnessDataset",
    "GroupSummary",
    "TTTSClassifier",
    "__version__",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "disparate_impact",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_report",
    "group_summary",
    "load_diabetes_sex",
    "load_german_credit",
    "make_biased_classification",
    "statistical_parity_difference",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

try:
    __version__ = version("fair-ttts")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

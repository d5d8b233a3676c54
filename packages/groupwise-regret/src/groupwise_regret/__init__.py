"""Oracle-efficient online learning with regret guarantees for every group.

Acharya, Arunachaleswaran, Kannan, Roth and Ziani, "Oracle Efficient Algorithms for Groupwise
Regret", ICLR 2024 (arXiv:2310.04652); official code: github.com/krishnacharya/multidecomp.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from groupwise_regret.datasets import GroupStream, diabetes_stream, synthetic_stream
    from groupwise_regret.estimator import GroupwiseClassifier, GroupwiseRegressor, StreamRecord
    from groupwise_regret.functional import (
        anh_distribution,
        anh_log_weights,
        anh_update,
        ridge_sherman_morrison,
    )
    from groupwise_regret.learners import (
        OnlineGradientDescent,
        OnlineLearner,
        OnlineRidge,
        PartialFitLearner,
    )
    from groupwise_regret.regret import GroupRegret, groupwise_regret

__all__ = [
    "GroupRegret",
    "GroupStream",
    "GroupwiseClassifier",
    "GroupwiseRegressor",
    "OnlineGradientDescent",
    "OnlineLearner",
    "OnlineRidge",
    "PartialFitLearner",
    "StreamRecord",
    "__version__",
    "anh_distribution",
    "anh_log_weights",
    "anh_update",
    "diabetes_stream",
    "groupwise_regret",
    "ridge_sherman_morrison",
    "synthetic_stream",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GroupRegret": ".regret",
        "groupwise_regret": ".regret",
        "GroupStream": ".datasets",
        "diabetes_stream": ".datasets",
        "synthetic_stream": ".datasets",
        "GroupwiseClassifier": ".estimator",
        "GroupwiseRegressor": ".estimator",
        "StreamRecord": ".estimator",
        "OnlineGradientDescent": ".learners",
        "OnlineLearner": ".learners",
        "OnlineRidge": ".learners",
        "PartialFitLearner": ".learners",
        "anh_distribution": ".functional",
        "anh_log_weights": ".functional",
        "anh_update": ".functional",
        "ridge_sherman_morrison": ".functional",
    },
)

try:
    __version__ = version("groupwise-regret")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

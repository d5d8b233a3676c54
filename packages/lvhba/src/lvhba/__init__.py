"""LV-HBA: Hessian-free constrained bilevel optimization with the proximal Lagrangian value
function (Yao, Yu, Zeng & Zhang, ICLR 2024, arXiv:2401.16164)."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from lvhba._cvx import InfeasibleError, SolverError
    from lvhba.baselines import BaselineResult, ImplicitGradient, ValueFunctionPenalty
    from lvhba.functional import LVHBAState, StepInfo, lvhba_step, penalty
    from lvhba.oracle import CvxpyLowerLevel, LowerLevelProgram, LowerLevelSolution, lower_level_gap
    from lvhba.problem import BilevelProblem
    from lvhba.sets import AffineSet, BoxSet, CvxpySet
    from lvhba.solver import LVHBA, History, LVHBAResult, NonFiniteIterateError

__all__ = [
    "LVHBA",
    "AffineSet",
    "BaselineResult",
    "BilevelProblem",
    "BoxSet",
    "CvxpyLowerLevel",
    "CvxpySet",
    "History",
    "ImplicitGradient",
    "InfeasibleError",
    "LVHBAResult",
    "LVHBAState",
    "LowerLevelProgram",
    "LowerLevelSolution",
    "NonFiniteIterateError",
    "SolverError",
    "StepInfo",
    "ValueFunctionPenalty",
    "__version__",
    "lower_level_gap",
    "lvhba_step",
    "penalty",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LVHBA": ".solver",
        "History": ".solver",
        "LVHBAResult": ".solver",
        "NonFiniteIterateError": ".solver",
        "AffineSet": ".sets",
        "BoxSet": ".sets",
        "CvxpySet": ".sets",
        "BilevelProblem": ".problem",
        "CvxpyLowerLevel": ".oracle",
        "LowerLevelProgram": ".oracle",
        "LowerLevelSolution": ".oracle",
        "lower_level_gap": ".oracle",
        "InfeasibleError": "._cvx",
        "SolverError": "._cvx",
        "BaselineResult": ".baselines",
        "ImplicitGradient": ".baselines",
        "ValueFunctionPenalty": ".baselines",
        "LVHBAState": ".functional",
        "StepInfo": ".functional",
        "lvhba_step": ".functional",
        "penalty": ".functional",
    },
)

try:
    __version__ = version("lvhba")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

"""monna: MoNNA robust collaborative learning (ICML 2023) with a simulator and torch.distributed.

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead" (ICML 2023, arXiv:2209.10931). Importing this package does not import torch;
the names below load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from monna.aggregators import (
        NNA,
        Aggregator,
        Average,
        GeometricMedian,
        Krum,
        Median,
        SelfCentredClipping,
        TrimmedMean,
        get_aggregator,
    )
    from monna.attacks import (
        ALIE,
        FOE,
        Attack,
        AttackContext,
        LabelFlipping,
        Mimic,
        NonFinite,
        SignFlipping,
        get_attack,
    )
    from monna.core import MoNNAConfig
    from monna.data import (
        Problem,
        blobs_problem,
        digits_problem,
        dirichlet_split,
        dirichlet_split_official,
    )
    from monna.distributed import DistributedMoNNA, PeerFailureError, init_process_group
    from monna.functional import line_maximize, nna, nna_numpy, nna_torch
    from monna.simulator import Simulator

_WHERE = {
    **dict.fromkeys(
        (
            "NNA",
            "Aggregator",
            "Average",
            "GeometricMedian",
            "Krum",
            "Median",
            "SelfCentredClipping",
            "TrimmedMean",
            "get_aggregator",
        ),
        ".aggregators",
    ),
    **dict.fromkeys(
        (
            "ALIE",
            "FOE",
            "Attack",
            "AttackContext",
            "LabelFlipping",
            "Mimic",
            "NonFinite",
            "SignFlipping",
            "get_attack",
        ),
        ".attacks",
    ),
    "MoNNAConfig": ".core",
    **dict.fromkeys(
        (
            "Problem",
            "blobs_problem",
            "digits_problem",
            "dirichlet_split",
            "dirichlet_split_official",
        ),
        ".data",
    ),
    **dict.fromkeys(("DistributedMoNNA", "PeerFailureError", "init_process_group"), ".distributed"),
    **dict.fromkeys(("line_maximize", "nna", "nna_numpy", "nna_torch"), ".functional"),
    "Simulator": ".simulator",
}

__all__ = [
    "ALIE",
    "FOE",
    "NNA",
    "Aggregator",
    "Attack",
    "AttackContext",
    "Average",
    "DistributedMoNNA",
    "GeometricMedian",
    "Krum",
    "LabelFlipping",
    "Median",
    "Mimic",
    "MoNNAConfig",
    "NonFinite",
    "PeerFailureError",
    "Problem",
    "SelfCentredClipping",
    "SignFlipping",
    "Simulator",
    "TrimmedMean",
    "__version__",
    "blobs_problem",
    "digits_problem",
    "dirichlet_split",
    "dirichlet_split_official",
    "get_aggregator",
    "get_attack",
    "init_process_group",
    "line_maximize",
    "nna",
    "nna_numpy",
    "nna_torch",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, eager={"__version__": None})

try:
    __version__ = version("monna")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0+unknown"

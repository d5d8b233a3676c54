"""AdamP and SGDP: momentum optimizers that project out the radial update on scale-invariant weights.

Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021 (arXiv:2006.08217). Official code: clovaai/AdamP.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from adamp_opt.functional import (
        DECISION_NAMES,
        PROJECTION_MODES,
        adamp,
        projection_scales,
        row_statistics,
        sgdp,
    )
    from adamp_opt.optimizer import SGDP, AdamP

__all__ = [
    "DECISION_NAMES",
    "PROJECTION_MODES",
    "SGDP",
    "AdamP",
    "__version__",
    "adamp",
    "projection_scales",
    "row_statistics",
    "sgdp",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AdamP": ".optimizer",
        "SGDP": ".optimizer",
        "adamp": ".functional",
        "sgdp": ".functional",
        "projection_scales": ".functional",
        "row_statistics": ".functional",
        "DECISION_NAMES": ".functional",
        "PROJECTION_MODES": ".functional",
    },
    eager={"__version__": None},
)

try:
    __version__ = version("adamp-opt")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0+unknown"

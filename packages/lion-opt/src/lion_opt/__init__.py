"""lion-opt: Lion and the Lion-𝒦 family as a ``torch.optim.Optimizer``.

Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms" (arXiv:2302.06675), and
Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts"
(ICLR 2024, arXiv:2310.05898). Importing this package does not import torch; the names below
load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from lion_opt.functional import lion_step
    from lion_opt.kappa import L2, Clip, DeadZone, Identity, Kappa, Lp, Sign, Tanh, get_kappa
    from lion_opt.optimizer import Lion, constraint_violation

__all__ = [
    "L2",
    "Clip",
    "DeadZone",
    "Identity",
    "Kappa",
    "Lion",
    "Lp",
    "Sign",
    "Tanh",
    "__version__",
    "constraint_violation",
    "get_kappa",
    "lion_step",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Lion": ".optimizer",
        "constraint_violation": ".optimizer",
        "lion_step": ".functional",
        **dict.fromkeys(
            ("L2", "Clip", "DeadZone", "Identity", "Kappa", "Lp", "Sign", "Tanh", "get_kappa"),
            ".kappa",
        ),
    },
    eager={"__version__": None},
)

try:
    __version__ = version("lion-opt")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0+unknown"

"""Adaptive Projected Guidance (Sadat, Hilliges, Weber, ICLR 2025, arXiv:2410.02416) for PyTorch.

``apg`` is the functional update, ``AdaptiveProjectedGuidance`` its stateful form; ``cfg`` and
``rescaled_cfg`` are the baselines; ``to_x0``/``from_x0`` move model outputs to the denoised space
APG works in; :mod:`apg_guidance.sampling`, :mod:`apg_guidance.mixture`, :mod:`apg_guidance.digits`
and :mod:`apg_guidance.metrics` are the small sampling stack of the demo and tests. The diffusers
guider lives in :mod:`apg_guidance.diffusers_guider` (needs diffusers).
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from apg_guidance.digits import DigitsDenoiser, load_digits_pixels, train_digits_denoiser
    from apg_guidance.functional import (
        SCALE_CONVENTIONS,
        apg,
        cfg,
        paper_scale,
        project,
        rescaled_cfg,
    )
    from apg_guidance.guidance import (
        AdaptiveProjectedGuidance,
        ClassifierFreeGuidance,
        RescaledClassifierFreeGuidance,
    )
    from apg_guidance.mixture import GaussianMixtureDenoiser, pixel_mixture, ring_mixture
    from apg_guidance.parameterization import PREDICTION_TYPES, from_x0, to_x0
    from apg_guidance.sampling import NULL_LABEL, edm_sigmas, sample, sample_euler, sample_heun

__all__ = [
    "NULL_LABEL",
    "PREDICTION_TYPES",
    "SCALE_CONVENTIONS",
    "AdaptiveProjectedGuidance",
    "ClassifierFreeGuidance",
    "DigitsDenoiser",
    "GaussianMixtureDenoiser",
    "RescaledClassifierFreeGuidance",
    "__version__",
    "apg",
    "cfg",
    "edm_sigmas",
    "from_x0",
    "load_digits_pixels",
    "paper_scale",
    "pixel_mixture",
    "project",
    "rescaled_cfg",
    "ring_mixture",
    "sample",
    "sample_euler",
    "sample_heun",
    "to_x0",
    "train_digits_denoiser",
]

_WHERE = {
    **dict.fromkeys(
        ["SCALE_CONVENTIONS", "apg", "cfg", "paper_scale", "project", "rescaled_cfg"], ".functional"
    ),
    **dict.fromkeys(
        ["AdaptiveProjectedGuidance", "ClassifierFreeGuidance", "RescaledClassifierFreeGuidance"],
        ".guidance",
    ),
    **dict.fromkeys(["PREDICTION_TYPES", "from_x0", "to_x0"], ".parameterization"),
    **dict.fromkeys(
        ["NULL_LABEL", "edm_sigmas", "sample", "sample_euler", "sample_heun"], ".sampling"
    ),
    **dict.fromkeys(["GaussianMixtureDenoiser", "pixel_mixture", "ring_mixture"], ".mixture"),
    **dict.fromkeys(["DigitsDenoiser", "load_digits_pixels", "train_digits_denoiser"], ".digits"),
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, eager={"__version__": None})

try:
    __version__ = version("apg-guidance")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

"""Convert a network's output to the denoised prediction ``x0`` and back.

APG is defined on the denoised prediction :math:`D \\approx x_0`. Models predict epsilon, v,
a flow velocity or ``x0`` itself. With the forward process

.. math:: x_t = \\alpha_t x_0 + \\sigma_t \\varepsilon

the conversions are

=============  =====================================  ==================================================================
prediction     output                                 :math:`x_0` from the output ``o``
=============  =====================================  ==================================================================
``sample``     :math:`x_0`                            :math:`o`
``epsilon``    :math:`\\varepsilon`                    :math:`(x_t - \\sigma_t o) / \\alpha_t`
``v``          :math:`\\alpha_t\\varepsilon - \\sigma_t x_0`  :math:`(\\alpha_t x_t - \\sigma_t o) / (\\alpha_t^2 + \\sigma_t^2)`
``flow``       :math:`\\varepsilon - x_0`               :math:`(x_t - \\sigma_t o) / (\\alpha_t + \\sigma_t)`
=============  =====================================  ==================================================================

Schedules: EDM / k-diffusion ``alpha = 1, sigma = sigma``; DDPM-style (diffusers
``DDPMScheduler`` etc.) ``alpha = sqrt(alphas_cumprod[t])``, ``sigma = sqrt(1 - alphas_cumprod[t])``;
rectified flow (SD3, Flux) ``alpha = 1 - t``, ``sigma = t`` (so ``x0 = x_t - t * v``).
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

PredictionType = Literal["sample", "epsilon", "v", "flow"]
PREDICTION_TYPES: tuple[str, ...] = ("sample", "epsilon", "v", "flow")
Coefficient = float | torch.Tensor


def _coef(
    name: str, value: Coefficient, like: torch.Tensor, *, positive: bool
) -> torch.Tensor | float:
    """A float, or a tensor broadcast per sample to ``like``'s shape."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0 or value.numel() == 1:
            return value.reshape(()).to(like)
        if value.ndim == 1 and value.shape[0] == like.shape[0]:
            return value.to(like).reshape(-1, *([1] * (like.ndim - 1)))
        raise ValueError(
            f"{name} must be a number, a one-element tensor or a tensor of shape ({like.shape[0]},), "
            f"got shape {tuple(value.shape)}"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number or a tensor, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0.0) or v < 0.0:
        need = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be finite and {need} here, got {value!r}")
    return v


def _check(output: torch.Tensor, sample: torch.Tensor, prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}"
        )
    for name, t in (("output", output), ("sample", sample)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}")
    if output.shape != sample.shape:
        raise ValueError(
            f"output and sample must have the same shape, got {tuple(output.shape)} and {tuple(sample.shape)}"
        )


def to_x0(
    output: torch.Tensor,
    sample: torch.Tensor,
    *,
    prediction_type: PredictionType,
    sigma: Coefficient,
    alpha: Coefficient = 1.0,
) -> torch.Tensor:
    """The denoised prediction :math:`x_0` from a model ``output`` at noisy ``sample`` :math:`x_t`.

    ``sigma`` and ``alpha`` are the noise and signal coefficients of :math:`x_t = \\alpha x_0 +
    \\sigma \\varepsilon` (numbers, or per-sample tensors of shape (B,)). See the module docstring.
    """
    _check(output, sample, prediction_type)
    if prediction_type == "sample":
        return output
    s = _coef("sigma", sigma, output, positive=False)
    a = _coef("alpha", alpha, output, positive=prediction_type == "epsilon")
    if prediction_type == "epsilon":
        return (sample - s * output) / a
    if prediction_type == "v":
        return (a * sample - s * output) / (a * a + s * s)
    return (sample - s * output) / (a + s)  # flow


def from_x0(
    x0: torch.Tensor,
    sample: torch.Tensor,
    *,
    prediction_type: PredictionType,
    sigma: Coefficient,
    alpha: Coefficient = 1.0,
) -> torch.Tensor:
    """The model output of ``prediction_type`` that corresponds to the denoised ``x0`` (inverse of :func:`to_x0`).

    Needs ``sigma > 0`` for every type but ``sample`` (at zero noise epsilon is undefined).
    """
    _check(x0, sample, prediction_type)
    if prediction_type == "sample":
        return x0
    s = _coef("sigma", sigma, x0, positive=True)
    a = _coef("alpha", alpha, x0, positive=False)
    eps = (sample - a * x0) / s
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v":
        return a * eps - s * x0
    return eps - x0  # flow


__all__ = ["PREDICTION_TYPES", "PredictionType", "from_x0", "to_x0"]

"""Deterministic Euler and Heun samplers of the EDM probability-flow ODE with a guidance hook.

Karras et al. (2022): noise levels

.. math:: \\sigma_i = \\bigl(\\sigma_{max}^{1/\\rho} + \\tfrac{i}{n-1}(\\sigma_{min}^{1/\\rho} - \\sigma_{max}^{1/\\rho})\\bigr)^\\rho,
          \\quad \\sigma_n = 0,

and the ODE :math:`dx/d\\sigma = (x - \\hat D(x, \\sigma)) / \\sigma`, where :math:`\\hat D` is the
*guided* denoised prediction returned by ``guidance(D_c, D_u, sigma)``. Euler takes one step per
level; Heun adds the trapezoid correction except on the last step to :math:`\\sigma = 0`
(EDM Algorithm 1 without churn).

A denoiser here is any callable ``denoiser(x, sigma, labels) -> x0`` with ``sigma`` of shape (B,)
and integer ``labels`` of shape (B,), where :data:`NULL_LABEL` (-1) asks for the unconditional
prediction. Conditional and unconditional predictions are computed in one batched call.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch

NULL_LABEL = -1


class Denoiser(Protocol):
    def __call__(
        self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor: ...


class Guidance(Protocol):
    def __call__(
        self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor, sigma: float | None = ...
    ) -> torch.Tensor: ...


def edm_sigmas(
    n_steps: int,
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The EDM noise grid: ``n_steps`` levels from ``sigma_max`` down to ``sigma_min``, then 0."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}"
        )
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho!r}")
    if n_steps == 1:
        levels = torch.tensor([sigma_max], dtype=dtype)
    else:
        ramp = torch.linspace(0.0, 1.0, n_steps, dtype=dtype)
        lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
        levels = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([levels, torch.zeros(1, dtype=dtype)])


def guided_denoise(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigma: float,
    labels: torch.Tensor,
    guidance: Guidance | None,
) -> torch.Tensor:
    """``guidance(D_c, D_u, sigma)`` from one batched denoiser call, or ``D_c`` when ``guidance`` is None."""
    b = x.shape[0]
    if guidance is None:
        return denoiser(x, x.new_full((b,), sigma), labels)
    both = denoiser(
        torch.cat([x, x]),
        x.new_full((2 * b,), sigma),
        torch.cat([labels, torch.full_like(labels, NULL_LABEL)]),
    )
    return guidance(both[:b], both[b:], sigma)


def sample(
    denoiser: Denoiser,
    noise: torch.Tensor,
    labels: torch.Tensor,
    *,
    guidance: Guidance | None = None,
    steps: int = 32,
    method: Literal["euler", "heun"] = "euler",
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
) -> torch.Tensor:
    """Sample the PF-ODE from ``noise`` (standard normal, scaled here by ``sigma_max``).

    Calls ``guidance.reset()`` first when it has one, so a momentum buffer starts fresh.

    Args:
        denoiser: ``denoiser(x, sigma, labels) -> x0`` (see the module docstring).
        noise: standard normal noise of the output's shape (B, ...).
        labels: int64 class labels of shape (B,); ``NULL_LABEL`` for unconditional samples.
        guidance: ``guidance(D_c, D_u, sigma) -> D_hat`` (CFG, APG, ...), or None for the
            conditional model alone.
        steps: number of noise levels; Heun uses ``2 * steps - 1`` evaluations.
        method: ``"euler"`` or ``"heun"``.
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    if not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating-point tensor, got {type(noise).__name__}")
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dtype != torch.int64
        or labels.shape != noise.shape[:1]
    ):
        raise ValueError(
            f"labels must be an int64 tensor of shape ({noise.shape[0]},), got {labels!r}"
        )
    reset = getattr(guidance, "reset", None)
    if callable(reset):
        reset()
    sigmas = edm_sigmas(steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho).tolist()
    x = noise * sigmas[0]
    with torch.no_grad():
        for i in range(steps):
            s, s_next = sigmas[i], sigmas[i + 1]
            d = (x - guided_denoise(denoiser, x, s, labels, guidance)) / s
            x_next = x + (s_next - s) * d
            if method == "heun" and s_next > 0:
                d2 = (x_next - guided_denoise(denoiser, x_next, s_next, labels, guidance)) / s_next
                x_next = x + (s_next - s) * 0.5 * (d + d2)
            x = x_next
    out: torch.Tensor = x
    return out


def sample_euler(
    denoiser: Denoiser, noise: torch.Tensor, labels: torch.Tensor, **kwargs: object
) -> torch.Tensor:
    """:func:`sample` with ``method="euler"``."""
    return sample(denoiser, noise, labels, method="euler", **kwargs)  # type: ignore[arg-type]


def sample_heun(
    denoiser: Denoiser, noise: torch.Tensor, labels: torch.Tensor, **kwargs: object
) -> torch.Tensor:
    """:func:`sample` with ``method="heun"``."""
    return sample(denoiser, noise, labels, method="heun", **kwargs)  # type: ignore[arg-type]


__all__ = [
    "NULL_LABEL",
    "Denoiser",
    "Guidance",
    "edm_sigmas",
    "guided_denoise",
    "sample",
    "sample_euler",
    "sample_heun",
]

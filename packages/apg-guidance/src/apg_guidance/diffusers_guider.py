"""APG as a diffusers guider (needs ``pip install apg-guidance[diffusers]``).

:class:`APGGuider` subclasses diffusers' ``AdaptiveProjectedGuidance``, so modular diffusers
pipelines use it exactly like theirs (``prepare_inputs``, ``num_conditions``, ``start``/``stop``,
``guidance_rescale``), but ``forward`` runs :func:`apg_guidance.apg`: the paper's update with its
scale convention, reductions in at least float32, a momentum buffer that starts afresh at step 0
and the paper's recommended defaults (``eta = 0``).

Like every diffusers guider it sees the raw model outputs (epsilon, v or flow velocity), not the
denoised prediction; see the README for running APG in x0 space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.guiders.adaptive_projected_guidance import AdaptiveProjectedGuidance as _DiffusersAPG
from diffusers.guiders.guider_utils import GuiderOutput, rescale_noise_cfg

from apg_guidance.functional import ScaleConvention, _anchor_and_coef, _check_real, apg


class APGGuider(_DiffusersAPG):  # type: ignore[misc]
    """A diffusers guider running :func:`apg_guidance.apg`.

    Args:
        guidance_scale: in ``scale_convention`` (default the paper's ``w``; 1 = no guidance).
        eta, norm_threshold, momentum, dims: as in :func:`apg_guidance.apg`.
        scale_convention: ``"paper"`` (default), ``"diffusers"``, ``"diffusers_original"``, ``"comfyui"``.
        guidance_rescale, start, stop, enabled: as in diffusers' guiders.
    """

    def __init__(
        self,
        guidance_scale: float = 7.5,
        eta: float = 0.0,
        norm_threshold: float = 0.0,
        momentum: float = 0.0,
        dims: int | Sequence[int] | None = None,
        scale_convention: ScaleConvention = "paper",
        guidance_rescale: float = 0.0,
        start: float = 0.0,
        stop: float = 1.0,
        enabled: bool = True,
    ) -> None:
        anchor, coef = _anchor_and_coef(
            _check_real("guidance_scale", guidance_scale), scale_convention
        )
        # diffusers decides from (guidance_scale, use_original_formulation) whether guidance is off
        # (then it skips the unconditional pass): give it the equivalent of our setting.
        original = anchor == "cond"
        super().__init__(
            guidance_scale=coef if original else guidance_scale,
            adaptive_projected_guidance_momentum=momentum if momentum != 0.0 else None,
            adaptive_projected_guidance_rescale=norm_threshold,
            adaptive_projected_guidance_norm_dim=None
            if dims is None
            else (dims if isinstance(dims, int) else tuple(dims)),
            eta=eta,
            guidance_rescale=guidance_rescale,
            use_original_formulation=original,
            start=start,
            stop=stop,
            enabled=enabled,
        )
        apg(
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            guidance_scale,
            eta=eta,
            norm_threshold=norm_threshold,
            momentum=momentum,
            scale_convention=scale_convention,
        )  # validates everything once
        self.apg_guidance_scale = float(guidance_scale)
        self.apg_eta = float(eta)
        self.apg_norm_threshold = float(norm_threshold)
        self.apg_momentum = float(momentum)
        self.apg_dims = dims
        self.apg_scale_convention: ScaleConvention = scale_convention
        self.apg_state: torch.Tensor | None = None

    def set_state(self, step: int, num_inference_steps: int, timestep: Any) -> None:
        super().set_state(step, num_inference_steps, timestep)
        if step == 0:
            self.apg_state = None

    def reset(self) -> None:
        """Forget the momentum buffer."""
        self.apg_state = None

    def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None) -> Any:
        if not self._is_apg_enabled() or pred_uncond is None:
            pred = pred_cond
        else:
            if self.apg_state is not None and self.apg_state.shape != pred_cond.shape:
                self.apg_state = None
            pred, self.apg_state = apg(
                pred_cond,
                pred_uncond,
                self.apg_guidance_scale,
                eta=self.apg_eta,
                norm_threshold=self.apg_norm_threshold,
                momentum=self.apg_momentum,
                state=self.apg_state if self.apg_momentum != 0.0 else None,
                dims=self.apg_dims,
                scale_convention=self.apg_scale_convention,
            )
        if self.guidance_rescale > 0.0:
            pred = rescale_noise_cfg(pred, pred_cond, self.guidance_rescale)  # type: ignore[no-untyped-call]
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)


__all__ = ["APGGuider"]

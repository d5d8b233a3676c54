"""Stateful guidance objects: APG and the CFG baselines, interchangeable in a sampler.

Every class here is called as ``guidance(pred_cond, pred_uncond, sigma=None)`` once per sampler
step and has ``reset()``, which the samplers in :mod:`apg_guidance.sampling` call at the start of
every run so that momentum never leaks from one run into the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from apg_guidance.functional import (
    SCALE_CONVENTIONS,
    ScaleConvention,
    _anchor_and_coef,
    _check_real,
    _reduce_dims,
    apg,
    cfg,
    rescaled_cfg,
)
from apg_guidance.parameterization import (
    PREDICTION_TYPES,
    Coefficient,
    PredictionType,
    from_x0,
    to_x0,
)


def _sigma_value(sigma: Coefficient | None) -> float | None:
    if sigma is None:
        return None
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() == 0:
            raise ValueError("sigma must not be an empty tensor")
        return float(sigma.reshape(-1)[0])
    return _check_real("sigma", sigma)


@dataclass
class _GraphedStep:
    """One captured APG step: static input, state and output buffers plus the CUDA graph."""

    key: tuple[object, ...]
    cond: torch.Tensor
    uncond: torch.Tensor
    state: torch.Tensor
    out: torch.Tensor
    graph: torch.cuda.CUDAGraph


class AdaptiveProjectedGuidance:
    """Adaptive Projected Guidance with its momentum buffer (Sadat et al., ICLR 2025).

    Wraps :func:`apg_guidance.apg`. By default the two predictions are denoised (x0) predictions,
    the space the paper uses. For a model that predicts epsilon, v or a flow velocity, set
    ``prediction_type`` and pass ``sample`` (the noisy input :math:`x_t`), ``sigma`` and ``alpha``
    to each call: the outputs are converted to x0, guided there, and converted back.

    Args:
        guidance_scale: guidance scale in ``scale_convention`` (paper: ``w >= 1``, 1 = none).
        eta: weight of the parallel component (paper: 0).
        norm_threshold: per-sample L2 bound ``r`` on the guidance difference (0 disables).
        momentum: reverse momentum ``beta`` with ``|beta| < 1`` (paper: negative, e.g. -0.5).
        dims: reduction dims for norms and projections (default all non-batch dims).
        scale_convention: ``"paper"``, ``"diffusers"``, ``"diffusers_original"`` or ``"comfyui"``;
            see :func:`apg_guidance.apg`.
        prediction_type: what the predictions passed in are: ``sample`` (x0), ``epsilon``, ``v``
            or ``flow``.
        reset_on_sigma_increase: start a new momentum buffer when ``sigma`` goes up between calls
            (a new sampling run), as ComfyUI does.
        compute_dtype: internal dtype (default: at least float32).
        fused: run each step as one compiled kernel (:func:`apg_guidance.apg` with
            ``fused=True``): fewer passes over memory, the first call compiles.
        cuda_graph: on CUDA, capture the step once in a CUDA graph and replay it: the host cost
            of a step drops to three copies and one replay (the step is host-bound at latent
            sizes). The first call of a shape warms up and captures; inputs are copied into
            static buffers and the output is returned as a fresh tensor, so nothing aliases.
            Needs CUDA tensors (a ``ValueError`` otherwise); same result as the eager step.

    Example::

        guidance = AdaptiveProjectedGuidance(guidance_scale=10.0, norm_threshold=15.0, momentum=-0.5)
        for sigma in sigmas:
            d_cond, d_uncond = model(x, sigma, y), model(x, sigma, None)
            denoised = guidance(d_cond, d_uncond, sigma)
    """

    def __init__(
        self,
        guidance_scale: float = 7.5,
        *,
        eta: float = 0.0,
        norm_threshold: float = 0.0,
        momentum: float = 0.0,
        dims: int | Sequence[int] | None = None,
        scale_convention: ScaleConvention = "paper",
        prediction_type: PredictionType = "sample",
        reset_on_sigma_increase: bool = True,
        compute_dtype: torch.dtype | None = None,
        fused: bool = False,
        cuda_graph: bool = False,
    ) -> None:
        for flag, value in (("fused", fused), ("cuda_graph", cuda_graph)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool, got {type(value).__name__} {value!r}")
        if scale_convention not in SCALE_CONVENTIONS:
            raise ValueError(
                f"scale_convention must be one of {SCALE_CONVENTIONS}, got {scale_convention!r}"
            )
        _anchor_and_coef(_check_real("guidance_scale", guidance_scale), scale_convention)
        _check_real("eta", eta)
        if _check_real("norm_threshold", norm_threshold) < 0:
            raise ValueError(
                f"norm_threshold must be >= 0 (0 disables the clip), got {norm_threshold!r}"
            )
        if not -1.0 < _check_real("momentum", momentum) < 1.0:
            raise ValueError(f"momentum must satisfy |momentum| < 1, got {momentum!r}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}"
            )
        if dims is not None:
            _reduce_dims(64, dims)  # type and batch-dim checks; range is checked per call
        self.guidance_scale = float(guidance_scale)
        self.eta = float(eta)
        self.norm_threshold = float(norm_threshold)
        self.momentum = float(momentum)
        self.dims = dims
        self.scale_convention: ScaleConvention = scale_convention
        self.prediction_type: PredictionType = prediction_type
        self.reset_on_sigma_increase = bool(reset_on_sigma_increase)
        self.compute_dtype = compute_dtype
        self.fused = fused
        self.cuda_graph = cuda_graph
        self._graphed: _GraphedStep | None = None
        self.state: torch.Tensor | None = None
        self.steps = 0
        self._prev_sigma: float | None = None

    def reset(self) -> None:
        """Forget the momentum buffer: the next call behaves like the first step of a run."""
        self.state = None
        self.steps = 0
        self._prev_sigma = None

    def __call__(
        self,
        pred_cond: torch.Tensor,
        pred_uncond: torch.Tensor,
        sigma: Coefficient | None = None,
        *,
        sample: torch.Tensor | None = None,
        alpha: Coefficient = 1.0,
    ) -> torch.Tensor:
        """Guide one step; returns the guided prediction in ``prediction_type``."""
        sv = _sigma_value(sigma)
        if (
            self.reset_on_sigma_increase
            and sv is not None
            and self._prev_sigma is not None
            and sv > self._prev_sigma
        ):
            self.reset()
        if self.prediction_type != "sample":
            if sample is None or sigma is None:
                raise ValueError(
                    f"prediction_type={self.prediction_type!r} needs sample (x_t) and sigma to convert to x0"
                )
            kw = {"prediction_type": self.prediction_type, "sigma": sigma, "alpha": alpha}
            d_c, d_u = to_x0(pred_cond, sample, **kw), to_x0(pred_uncond, sample, **kw)  # type: ignore[arg-type]
        else:
            d_c, d_u = pred_cond, pred_uncond
        if self.state is not None and self.state.shape != d_c.shape:
            raise ValueError(
                f"batch shape changed mid-run from {tuple(self.state.shape)} to {tuple(d_c.shape)}; call reset() first"
            )
        if self.cuda_graph:
            guided = self._graph_step(d_c, d_u)
        else:
            guided, self.state = self._eager(d_c, d_u, self.state if self.momentum != 0.0 else None)
        self.steps += 1
        self._prev_sigma = sv
        if self.prediction_type != "sample":
            assert sample is not None and sigma is not None
            return from_x0(
                guided, sample, prediction_type=self.prediction_type, sigma=sigma, alpha=alpha
            )
        return guided

    def _eager(
        self, d_c: torch.Tensor, d_u: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return apg(
            d_c,
            d_u,
            self.guidance_scale,
            eta=self.eta,
            norm_threshold=self.norm_threshold,
            momentum=self.momentum,
            state=state,
            dims=self.dims,
            scale_convention=self.scale_convention,
            compute_dtype=self.compute_dtype,
            fused=self.fused,
        )

    def _graph_step(self, d_c: torch.Tensor, d_u: torch.Tensor) -> torch.Tensor:
        """Replay the captured step (capturing it first for a new shape, dtype or device).

        The captured step reads the momentum from a static buffer and writes m_t back into it;
        the first step of a run zeroes that buffer, so m_1 = Delta + beta * 0 = Delta exactly as
        in the eager step (up to the sign of a zero).
        """
        if d_c.device.type != "cuda" or d_u.device != d_c.device:
            raise ValueError(
                f"cuda_graph=True needs both predictions on one CUDA device, got {d_c.device} "
                f"and {d_u.device}; use cuda_graph=False on other devices"
            )
        key = (tuple(d_c.shape), d_c.dtype, d_u.dtype, d_c.device, tuple(d_u.shape))
        g = self._graphed
        if g is None or g.key != key:
            self._graphed = g = self._capture(d_c, d_u, key)
        if self.state is None:
            g.state.zero_()
        elif self.state is not g.state:  # captured mid-run (e.g. a new dtype): carry m over
            g.state.copy_(self.state)
        g.cond.copy_(d_c)
        g.uncond.copy_(d_u)
        g.graph.replay()
        self.state = g.state  # m_t; the next replay updates this buffer in place
        return g.out.clone()

    def _capture(
        self, d_c: torch.Tensor, d_u: torch.Tensor, key: tuple[object, ...]
    ) -> _GraphedStep:
        cond, uncond = d_c.clone(), d_u.clone()
        _, m0 = self._eager(cond, uncond, None)  # checks the arguments, gives the state dtype
        state = torch.zeros_like(m0)
        use_state = self.momentum != 0.0

        def step() -> torch.Tensor:
            out, m = self._eager(cond, uncond, state if use_state else None)
            state.copy_(m)
            return out

        side = torch.cuda.Stream(device=d_c.device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(d_c.device))
        with torch.cuda.stream(side):  # warm-up off the capture (lazy init, kernel compiles)
            for _ in range(3):
                step()
        torch.cuda.current_stream(d_c.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
        return _GraphedStep(key, cond, uncond, state, out, graph)

    def __repr__(self) -> str:
        return (
            f"AdaptiveProjectedGuidance(guidance_scale={self.guidance_scale}, eta={self.eta}, "
            f"norm_threshold={self.norm_threshold}, momentum={self.momentum}, dims={self.dims}, "
            f"scale_convention={self.scale_convention!r}, prediction_type={self.prediction_type!r}, "
            f"fused={self.fused}, cuda_graph={self.cuda_graph})"
        )


class ClassifierFreeGuidance:
    """CFG in the paper's convention, :math:`D_c + (w-1)(D_c - D_u)`; stateless, same call signature."""

    def __init__(self, guidance_scale: float = 7.5) -> None:
        self.guidance_scale = _check_real("guidance_scale", guidance_scale)

    def reset(self) -> None:
        """Nothing to forget (kept so samplers can treat all guidance objects alike)."""

    def __call__(
        self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor, sigma: Coefficient | None = None
    ) -> torch.Tensor:
        return cfg(pred_cond, pred_uncond, self.guidance_scale)

    def __repr__(self) -> str:
        return f"ClassifierFreeGuidance(guidance_scale={self.guidance_scale})"


class RescaledClassifierFreeGuidance:
    """CFG with Lin et al.'s standard-deviation rescale (``phi = 0.7``); see :func:`apg_guidance.rescaled_cfg`."""

    def __init__(self, guidance_scale: float = 7.5, *, phi: float = 0.7) -> None:
        self.guidance_scale = _check_real("guidance_scale", guidance_scale)
        self.phi = _check_real("phi", phi)
        if not 0.0 <= self.phi <= 1.0:
            raise ValueError(f"phi must be in [0, 1], got {phi!r}")

    def reset(self) -> None:
        """Nothing to forget."""

    def __call__(
        self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor, sigma: Coefficient | None = None
    ) -> torch.Tensor:
        return rescaled_cfg(pred_cond, pred_uncond, self.guidance_scale, phi=self.phi)

    def __repr__(self) -> str:
        return (
            f"RescaledClassifierFreeGuidance(guidance_scale={self.guidance_scale}, phi={self.phi})"
        )


__all__ = ["AdaptiveProjectedGuidance", "ClassifierFreeGuidance", "RescaledClassifierFreeGuidance"]

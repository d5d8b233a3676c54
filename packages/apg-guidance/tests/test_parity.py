"""Parity: the paper's appendix listing (written here independently) and diffusers."""

from __future__ import annotations

from typing import Any

import torch
from apg_guidance import AdaptiveProjectedGuidance, apg


class _ListingMomentum:
    """The listing's buffer: running = update + momentum * running, starting at 0."""

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.running: Any = 0

    def update(self, value: torch.Tensor) -> None:
        self.running = value + self.momentum * self.running


def _listing_project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = v0.dtype
    v0, v1 = v0.double(), v1.double()
    v1 = torch.nn.functional.normalize(v1, dim=[-1, -2, -3])  # type: ignore[arg-type]
    par = (v0 * v1).sum(dim=[-1, -2, -3], keepdim=True) * v1
    return par.to(dtype), (v0 - par).to(dtype)


def _listing(
    c: torch.Tensor, u: torch.Tensor, w: float, buf: _ListingMomentum | None, eta: float, r: float
) -> torch.Tensor:
    diff = c - u
    if buf is not None:
        buf.update(diff)
        diff = buf.running
    if r > 0:
        n = diff.norm(p=2, dim=[-1, -2, -3], keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(diff), r / n)
    par, orth = _listing_project(diff, c)
    return c + (w - 1) * (orth + eta * par)


def test_matches_listing_float64_over_20_steps() -> None:
    g = torch.Generator().manual_seed(0)
    for eta, r, beta in ((0.0, 15.0, -0.5), (0.3, 5.0, -0.75), (1.0, 0.0, 0.0), (0.0, 2.0, 0.4)):
        buf = _ListingMomentum(beta)
        guide = AdaptiveProjectedGuidance(
            9.0, eta=eta, norm_threshold=r, momentum=beta, compute_dtype=torch.float64
        )
        for _ in range(20):
            c = torch.randn(3, 4, 16, 16, generator=g, dtype=torch.float64)
            u = c + 0.8 * torch.randn(3, 4, 16, 16, generator=g, dtype=torch.float64)
            ref = _listing(c, u, 9.0, buf, eta, r)
            ours = guide(c, u)
            assert (ours - ref).abs().max() <= 1e-10


def test_matches_listing_float32_relative() -> None:
    g = torch.Generator().manual_seed(1)
    buf = _ListingMomentum(-0.5)
    state = None
    for _ in range(10):
        c = torch.randn(2, 4, 32, 32, generator=g)
        u = c + torch.randn(2, 4, 32, 32, generator=g)
        ref = _listing(c, u, 7.5, buf, 0.0, 15.0)
        ours, state = apg(c, u, 7.5, eta=0.0, norm_threshold=15.0, momentum=-0.5, state=state)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def _comfyui(
    c: torch.Tensor, u: torch.Tensor, s: float, running: Any, eta: float, r: float, beta: float
) -> tuple[torch.Tensor, Any]:
    """ComfyUI's APG node: a pre-CFG hook that rewrites cond, followed by ComfyUI's CFG."""
    guidance = c - u
    if beta != 0:
        running = guidance if not torch.is_tensor(running) else beta * running + guidance
        guidance = running
    if r > 0:
        n = guidance.norm(p=2, dim=[-1, -2, -3], keepdim=True)
        guidance = guidance * torch.minimum(torch.ones_like(n), r / n)
    par, orth = _listing_project(guidance, c)
    modified_cond = (u + orth + eta * par) + (c - u) / s
    return u + s * (modified_cond - u), running


def test_comfyui_convention_matches_comfyui_node() -> None:
    g = torch.Generator().manual_seed(2)
    running: Any = 0
    guide = AdaptiveProjectedGuidance(
        6.0, eta=0.2, norm_threshold=5.0, momentum=-0.5, scale_convention="comfyui"
    )
    for _ in range(8):
        c = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
        u = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
        ref, running = _comfyui(c, u, 6.0, running, 0.2, 5.0, -0.5)
        torch.testing.assert_close(guide(c, u), ref, rtol=1e-12, atol=1e-12)


def test_matches_diffusers_normalized_guidance() -> None:
    from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer, normalized_guidance

    g = torch.Generator().manual_seed(3)
    for original, conv, scale in ((True, "diffusers_original", 6.0), (False, "diffusers", 7.0)):
        buf = MomentumBuffer(-0.5)
        state = None
        for _ in range(20):
            c = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
            u = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
            ref = normalized_guidance(c, u, scale, buf, 0.3, 5.0, use_original_formulation=original)
            ours, state = apg(
                c,
                u,
                scale,
                eta=0.3,
                norm_threshold=5.0,
                momentum=-0.5,
                state=state,
                scale_convention=conv,  # type: ignore[arg-type]
            )
            assert (ours - ref).abs().max() <= 1e-10
        if original:  # diffusers' original formulation at w - 1 is the paper at w
            pass


def test_diffusers_guider_adapter() -> None:
    from apg_guidance.diffusers_guider import APGGuider
    from diffusers.guiders.adaptive_projected_guidance import (
        AdaptiveProjectedGuidance as DiffusersAPG,
    )

    ours = APGGuider(guidance_scale=8.0, eta=0.0, norm_threshold=5.0, momentum=-0.5)
    ref = DiffusersAPG(
        guidance_scale=7.0,
        adaptive_projected_guidance_momentum=-0.5,
        adaptive_projected_guidance_rescale=5.0,
        eta=0.0,
        use_original_formulation=True,
    )
    assert ours.num_conditions == 2
    g = torch.Generator().manual_seed(4)
    for _run in range(2):  # the buffer must restart at step 0 of the second run
        for step in range(6):
            for guider in (ours, ref):
                guider.set_state(step, 6, torch.tensor(999 - step))
                guider.prepare_inputs({"prompt_embeds": (torch.zeros(1), torch.zeros(1))})
            c = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
            u = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
            torch.testing.assert_close(
                ours.forward(c, u).pred, ref.forward(c, u).pred, rtol=1e-12, atol=1e-12
            )
    off = APGGuider(guidance_scale=1.0)
    assert off.num_conditions == 1

"""The update's equations and invariants."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from apg_guidance import apg, cfg, paper_scale, project, rescaled_cfg
from hypothesis import given, settings
from hypothesis import strategies as st


def _pair(
    shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(
        shape, generator=g, dtype=dtype
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eta1_no_clip_no_momentum_is_cfg_exactly(dtype: torch.dtype) -> None:
    c, u = _pair((3, 4, 5, 6), dtype=dtype)
    for w in (1.0, 2.5, 7.5, 15.0):
        g, _ = apg(c, u, w, eta=1.0, norm_threshold=0.0, momentum=0.0)
        assert torch.equal(g, cfg(c, u, w))
        torch.testing.assert_close(g, c + (w - 1.0) * (c - u))  # the same formula written out


def test_eta1_through_general_path_equals_cfg() -> None:
    c, u = _pair((3, 4, 5, 6))
    g, _ = apg(c, u, 6.0, eta=1.0, norm_threshold=1e9)  # clip enabled but inactive: projection path
    torch.testing.assert_close(g, cfg(c, u, 6.0), rtol=0, atol=1e-12)


def test_scale_one_returns_cond() -> None:
    c, u = _pair((2, 3, 4))
    g, _ = apg(c, u, 1.0, eta=0.3, norm_threshold=0.5, momentum=-0.5)
    torch.testing.assert_close(g, c, rtol=0, atol=0)


def test_eta0_update_is_orthogonal_to_cond() -> None:
    c, u = _pair((4, 3, 8, 8))
    g, _ = apg(c, u, 9.0, eta=0.0)
    dots = ((g - c) * c).sum(dim=(1, 2, 3))
    scale = (g - c).flatten(1).norm(dim=1) * c.flatten(1).norm(dim=1)
    assert (dots.abs() / scale).max() < 1e-13


def test_parallel_part_scaled_by_eta() -> None:
    c, u = _pair((3, 10))
    par, orth = project(c - u, c)
    g, _ = apg(c, u, 4.0, eta=0.25)
    torch.testing.assert_close(g, c + 3.0 * (orth + 0.25 * par), rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    w=st.floats(1.0, 30.0),
    eta=st.floats(-1.0, 1.0),
    r=st.floats(1e-3, 10.0),
    beta=st.floats(-0.95, 0.95),
    seed=st.integers(0, 2**16),
)
def test_norm_bound(w: float, eta: float, r: float, beta: float, seed: int) -> None:
    c, u = _pair((3, 2, 4, 4), seed)
    state = None
    for _ in range(3):
        c, u = c * 1.3, u - 0.5
        g, state = apg(c, u, w, eta=eta, norm_threshold=r, momentum=beta, state=state)
        norms = (g - c).flatten(1).norm(dim=1)
        assert bool((norms <= (w - 1.0) * r * (1 + 1e-9) + 1e-12).all())


def test_momentum_recurrence_constant_difference() -> None:
    c, u = _pair((2, 5))
    beta = -0.5
    state = None
    for k in range(1, 8):
        g, state = apg(c, u, 3.0, eta=1.0, momentum=beta, state=state)
        expected_m = (c - u) * (1 - beta**k) / (1 - beta)
        torch.testing.assert_close(state, expected_m, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(g, c + 2.0 * expected_m, rtol=1e-13, atol=1e-13)


def test_momentum_is_not_an_ema() -> None:
    c, u = _pair((2, 5))
    _, s1 = apg(c, u, 3.0, momentum=-0.5)
    torch.testing.assert_close(s1, c - u)  # first step unchanged, no (1 - beta) factor
    c2, u2 = _pair((2, 5), seed=3)
    _, s2 = apg(c2, u2, 3.0, momentum=-0.5, state=s1)
    torch.testing.assert_close(s2, (c2 - u2) - 0.5 * (c - u))


def test_clip_applies_after_momentum() -> None:
    c, u = _pair((1, 16))
    _, s = apg(c, u, 2.0, momentum=0.9)
    g, _ = apg(c, u, 2.0, eta=1.0, norm_threshold=1.0, momentum=0.9, state=s)
    m = (c - u) * 1.9
    torch.testing.assert_close(g, c + m / m.norm())


def test_per_sample_independence() -> None:
    c, u = _pair((6, 3, 4, 4))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    g, _ = apg(c, u, 8.0, eta=0.2, norm_threshold=2.0, momentum=-0.5)
    gp, _ = apg(c[perm], u[perm], 8.0, eta=0.2, norm_threshold=2.0, momentum=-0.5)
    torch.testing.assert_close(gp, g[perm], rtol=0, atol=1e-14)
    one, _ = apg(c[2:3], u[2:3], 8.0, eta=0.2, norm_threshold=2.0, momentum=-0.5)
    torch.testing.assert_close(one, g[2:3], rtol=0, atol=1e-14)


def test_projection_invariant_to_scaling_cond() -> None:
    c, u = _pair((3, 7))
    p1, o1 = project(c - u, c)
    p2, o2 = project(c - u, 3.7 * c)
    torch.testing.assert_close(p1, p2)
    torch.testing.assert_close(o1, o2)


def test_zero_cond_and_zero_difference_give_no_nan() -> None:
    c = torch.zeros(2, 3, 4)
    g, _ = apg(c, torch.randn(2, 3, 4), 5.0, eta=0.0, norm_threshold=1.0)
    assert torch.isfinite(g).all()
    x = torch.randn(2, 3, 4)
    g, _ = apg(x, x.clone(), 5.0, eta=0.0, norm_threshold=1.0)
    torch.testing.assert_close(g, x)


def test_half_precision_matches_float32_and_is_finite() -> None:
    c, u = _pair((2, 4, 32, 32), dtype=torch.float32)
    c, u = c * 30, u * 30  # squared norms overflow float16 (max 65504)
    g16, s16 = apg(c.half(), u.half(), 10.0, eta=0.0, norm_threshold=15.0, momentum=-0.5)
    g32, _ = apg(
        c.half().float(), u.half().float(), 10.0, eta=0.0, norm_threshold=15.0, momentum=-0.5
    )
    assert g16.dtype == torch.float16 and s16.dtype == torch.float32
    assert torch.isfinite(g16).all()
    torch.testing.assert_close(g16.float(), g32, rtol=2e-3, atol=2e-2)
    gb, _ = apg(c.bfloat16(), u.bfloat16(), 10.0)
    assert gb.dtype == torch.bfloat16 and torch.isfinite(gb).all()


def test_dims_subset_equals_per_slice() -> None:
    c, u = _pair((2, 3, 4, 5, 6))  # (B, C, T, H, W)
    g, _ = apg(c, u, 6.0, eta=0.1, norm_threshold=1.5, dims=(-1, -2, -3))
    for b in range(2):
        for ch in range(3):
            gs, _ = apg(c[b, ch][None], u[b, ch][None], 6.0, eta=0.1, norm_threshold=1.5)
            torch.testing.assert_close(g[b, ch], gs[0], rtol=0, atol=1e-13)
    g2, _ = apg(c, u, 6.0, eta=0.1, dims=(1, 3))  # non-trailing dims: permute path
    for t in range(4):
        for w in range(6):
            gs, _ = apg(c[:, :, t, :, w], u[:, :, t, :, w], 6.0, eta=0.1)
            torch.testing.assert_close(g2[:, :, t, :, w], gs, rtol=0, atol=1e-13)


def test_scale_conventions() -> None:
    c, u = _pair((3, 4, 4))
    kw: dict[str, Any] = {"eta": 0.3, "norm_threshold": 2.0, "momentum": -0.5}
    paper, _ = apg(c, u, 8.0, **kw)
    for conv in ("comfyui", "diffusers_original"):
        other, _ = apg(c, u, 7.0, scale_convention=conv, **kw)  # type: ignore[arg-type]
        torch.testing.assert_close(other, paper, rtol=0, atol=1e-13)
        assert paper_scale(7.0, conv) == 8.0  # type: ignore[arg-type]
    native, _ = apg(c, u, 8.0, scale_convention="diffusers", eta=1.0)
    torch.testing.assert_close(native, cfg(c, u, 8.0))
    native, _ = apg(c, u, 8.0, scale_convention="diffusers", **kw)
    assert (native - paper).abs().max() > 0.1  # not the paper's update


def test_rescaled_cfg_matches_formula() -> None:
    c, u = _pair((3, 2, 5))
    g = cfg(c, u, 7.0)
    std_c = c.flatten(1).std(dim=1).reshape(-1, 1, 1)
    std_g = g.flatten(1).std(dim=1).reshape(-1, 1, 1)
    expected = 0.7 * g * std_c / std_g + 0.3 * g
    torch.testing.assert_close(rescaled_cfg(c, u, 7.0, phi=0.7), expected)
    torch.testing.assert_close(rescaled_cfg(c, u, 7.0, phi=0.0), g)


def test_inputs_not_modified() -> None:
    c, u = _pair((2, 3, 4))
    c0, u0 = c.clone(), u.clone()
    _, s = apg(c, u, 5.0, momentum=-0.5)
    s0 = s.clone()
    apg(c, u, 5.0, momentum=-0.5, state=s, norm_threshold=1.0)
    assert torch.equal(c, c0) and torch.equal(u, u0) and torch.equal(s, s0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("eta", "r", "conv"),
    [(0.0, 15.0, "paper"), (0.3, 2.0, "diffusers"), (1.0, 1.0, "paper"), (0.5, 0.0, "comfyui")],
)
def test_few_rows_fast_path_equals_tensor_path(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, eta: float, r: float, conv: str
) -> None:
    """The few-rows CPU path (per-row dots, Python-float scalars) equals the batched tensor path."""
    import apg_guidance.functional as functional

    c, u = _pair((3, 4, 16, 16), dtype=dtype)
    kw: dict[str, Any] = {"eta": eta, "norm_threshold": r, "momentum": -0.5}
    kw["scale_convention"] = conv
    fast1, s1 = apg(c, u, 7.0, **kw)
    fast2, _ = apg(c * 1.1, u, 7.0, state=s1, **kw)
    zero, _ = apg(torch.zeros_like(c), u, 7.0, **kw)  # zero D_c: no NaN on either path
    monkeypatch.setattr(functional, "_FEW_ROWS", 0)
    slow1, t1 = apg(c, u, 7.0, **kw)
    slow2, _ = apg(c * 1.1, u, 7.0, state=t1, **kw)
    slow_zero, _ = apg(torch.zeros_like(c), u, 7.0, **kw)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, b in ((fast1, slow1), (fast2, slow2), (zero, slow_zero)):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    assert torch.isfinite(zero).all()
    torch.testing.assert_close(s1, t1, rtol=0, atol=0)


def test_autograd_flows_through_the_combine_step() -> None:
    """With gradients on, the tensor path runs, so the per-sample scalars stay differentiable."""
    c, u = _pair((2, 3, 4, 4))
    c.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: apg(x, u, 5.0, eta=0.2, norm_threshold=1.0)[0], (c,), eps=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_few_rows_fast_path_edge_cases(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    """Zero difference, zero D_c, clip-only and projection-only settings, half inputs and an
    empty batch: the few-rows path (dots read back as floats) equals the tensor path."""
    import apg_guidance.functional as functional

    c, u = _pair((2, 3, 8, 8), dtype=dtype)
    cases: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = [
        (c, c.clone(), {"eta": 0.0, "norm_threshold": 2.0}),  # m = 0: clip scale 1, no NaN
        (torch.zeros_like(c), u, {"eta": 0.0, "norm_threshold": 2.0}),  # ||D_c|| = 0
        (c, u, {"eta": 1.0, "norm_threshold": 2.0}),  # clip only
        (c, u, {"eta": 0.2, "norm_threshold": 0.0, "momentum": -0.5}),  # projection only
        (c, u, {"eta": 0.0, "norm_threshold": 1e6, "scale_convention": "diffusers"}),
        (c[:0], u[:0], {"eta": 0.0, "norm_threshold": 2.0}),  # empty batch
    ]
    fast = [apg(a, b, 7.0, **kw) for a, b, kw in cases]
    monkeypatch.setattr(functional, "_FEW_ROWS", 0)
    slow = [apg(a, b, 7.0, **kw) for a, b, kw in cases]
    half = dtype in (torch.float16, torch.bfloat16)
    tol = 1e-2 if half else (1e-5 if dtype == torch.float32 else 1e-12)
    for (g_fast, s_fast), (g_slow, s_slow) in zip(fast, slow, strict=True):
        assert g_fast.dtype == dtype and g_fast.shape == g_slow.shape
        assert torch.isfinite(g_fast).all()
        torch.testing.assert_close(g_fast, g_slow, rtol=tol, atol=tol)
        torch.testing.assert_close(s_fast, s_slow, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("dtype", "convention", "eta", "r", "beta"),
    # one configuration (each compiles, seconds): the paper's settings, every stage switched on
    [(torch.float64, "paper", 0.2, 2.0, -0.5)],
)
def test_fused_step_equals_eager(
    dtype: torch.dtype, convention: str, eta: float, r: float, beta: float
) -> None:
    """``fused=True`` (one torch.compile'd kernel) gives the eager result, state included."""
    g = torch.Generator().manual_seed(3)
    c = torch.randn(3, 2, 5, 7, generator=g, dtype=dtype)
    u = torch.randn(3, 2, 5, 7, generator=g, dtype=dtype)
    c[1] = 0.0  # zero conditional prediction: no NaN on either path
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    s_e = s_f = None
    for _ in range(3):
        kw: dict[str, Any] = {
            "eta": eta,
            "norm_threshold": r,
            "momentum": beta,
            "scale_convention": convention,
        }
        a, s_e = apg(c, u, 7.5, state=s_e, **kw)
        b, s_f = apg(c, u, 7.5, state=s_f, fused=True, **kw)
        assert b.dtype == a.dtype and s_f.dtype == s_e.dtype
        assert not torch.isnan(b).any()
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
        torch.testing.assert_close(s_f, s_e, rtol=tol, atol=tol)
    # non-trailing reduction dims go through the (rows, features) permutation first
    a, _ = apg(c, u, 7.5, dims=(1, 3), **kw)
    b, _ = apg(c, u, 7.5, dims=(1, 3), fused=True, **kw)
    torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    with pytest.raises(TypeError, match="fused must be a bool"):
        apg(c, u, 7.5, fused=1)  # type: ignore[arg-type]

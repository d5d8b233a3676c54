# mypy: disable-error-code="no-untyped-call,index,call-overload,arg-type,misc,operator"
"""Equations and closed forms: the projection, the detection, the 2-D toy, reductions to AdamW/SGD."""

from __future__ import annotations

import copy

import adamp_opt
import pytest
import torch
from adamp_opt import SGDP, AdamP, _batched, projection_scales, row_statistics
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn


def _one(
    grad: torch.Tensor, w: torch.Tensor, u: torch.Tensor, mode: str = "auto"
) -> tuple[int, torch.Tensor]:
    stats = row_statistics(grad, w, u)
    c = stats.shape[1]
    codes, scale = projection_scales(
        stats, torch.zeros(c, dtype=torch.long), torch.tensor([w.numel() / c], dtype=w.dtype),
        torch.tensor([float(w.numel())], dtype=w.dtype), delta=0.1, eps=1e-8, mode=mode,  # type: ignore[arg-type]
    )  # fmt: skip
    return int(codes[0]), scale


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 8), cols=st.integers(8, 40))
def test_projection_removes_the_radial_part_per_row(seed: int, rows: int, cols: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    u = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    _, scale = _one(u, w, u, mode="channel")
    projected = u - scale[:, None] * w
    radial = (projected * w).sum(1) / w.norm(dim=1)
    assert radial.abs().max() < 1e-6 * u.norm()
    # and the tangential part is untouched
    tangential = u - ((u * w).sum(1) / (w * w).sum(1))[:, None] * w
    torch.testing.assert_close(projected, tangential, rtol=0, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 8), cols=st.integers(16, 64))
def test_detection_fires_on_gradients_orthogonal_per_row_and_not_on_aligned_ones(
    seed: int, rows: int, cols: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    g = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    g_perp = (
        g - ((g * w).sum(1) / (w * w).sum(1))[:, None] * w
    )  # what BatchNorm after the layer gives
    assert _one(g_perp, w, g_perp)[0] == adamp_opt.functional.CHANNEL
    g_layer = g - ((g * w).sum() / (w * w).sum()) * w  # invariant only to scaling the whole tensor
    assert _one(g_layer, w, g_layer)[0] in (
        adamp_opt.functional.LAYER,
        adamp_opt.functional.CHANNEL,
    )
    assert _one(g + 0.5 * w, w, g)[0] == adamp_opt.functional.NONE


def test_zero_gradient_or_weight_is_not_called_invariant() -> None:
    w = torch.randn(4, 6, dtype=torch.float64)
    assert _one(torch.zeros_like(w), w, w)[0] == adamp_opt.functional.NONE
    assert (
        _one(torch.randn(4, 6, dtype=torch.float64), torch.zeros_like(w), w)[0]
        == adamp_opt.functional.NONE
    )
    # in the optimizer: weight decay is then *not* reduced by wd_ratio (the official code reduces it)
    p = torch.ones(3, 4, requires_grad=True)
    opt = AdamP([p], lr=0.1, weight_decay=1.0)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert opt.projection_decisions() == {"group0.param0": "none"}
    torch.testing.assert_close(p.detach(), torch.full((3, 4), 0.9))


def _toy(opt_cls: type, steps: int, **kw: float) -> tuple[float, float]:
    """min -cos(w, w*) from w0 = (1, 0), w* = (0, 1), lr 0.1: final cosine and norm."""
    target = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    opt = opt_cls([w], lr=0.1, **kw)
    for _ in range(steps):
        opt.zero_grad()
        (-nn.functional.cosine_similarity(w, target).sum()).backward()
        opt.step()
    return float(nn.functional.cosine_similarity(w.detach(), target)), float(w.detach().norm())


def test_two_dimensional_scale_invariant_toy() -> None:
    """The paper's toy (Fig. 3): momentum inflates ||w||; SGDP keeps it near 1 and still converges."""
    cos_m, norm_m = _toy(torch.optim.SGD, 100, momentum=0.9)
    cos_p, norm_p = _toy(SGDP, 100, momentum=0.9)
    assert cos_m > 0.999 and cos_p > 0.999
    assert norm_m > 4.0 and norm_p < 1.4, (norm_m, norm_p)  # measured 4.45 and 1.35
    _, norm_m99 = _toy(torch.optim.SGD, 300, momentum=0.99)
    _, norm_p99 = _toy(SGDP, 300, momentum=0.99)
    assert norm_m99 > 10 * norm_p99, (norm_m99, norm_p99)  # measured 40.3 and 2.3


def _problem(seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 36, 4),
    ).double()
    gen = torch.Generator().manual_seed(seed + 1)
    data = [
        (
            torch.randn(6, 3, 8, 8, generator=gen, dtype=torch.float64),
            torch.randint(0, 4, (6,), generator=gen),
        )
        for _ in range(3)
    ]
    return model, data


def _train(model: nn.Module, opt: torch.optim.Optimizer, data: list, steps: int = 20) -> None:
    for t in range(steps):
        opt.zero_grad()
        x, y = data[t % len(data)]
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_projection_off_is_adamw_and_sgd() -> None:
    for ours, ref in [
        (
            lambda ps: AdamP(ps, lr=1e-2, weight_decay=0.1, projection="off"),
            lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        ),
        (
            lambda ps: SGDP(ps, lr=0.05, momentum=0.9, projection="off"),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        ),
    ]:
        a, data = _problem()
        b = copy.deepcopy(a)
        _train(a, ours(a.parameters()), data)
        _train(b, ref(b.parameters()), data)
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [AdamP, SGDP])
def test_channels_last_weights_match_contiguous(cls: type) -> None:
    a, data = _problem()
    b = copy.deepcopy(a).to(memory_format=torch.channels_last)
    assert not b[0].weight.is_contiguous()
    _train(a, cls(a.parameters(), lr=1e-2, weight_decay=1e-2), data)
    _train(b, cls(b.parameters(), lr=1e-2, weight_decay=1e-2), data)
    assert b[0].weight.is_contiguous(memory_format=torch.channels_last)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


def test_conv_transpose_needs_channel_dim_one() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose2d(3, 5, 3, bias=False), nn.BatchNorm2d(5)).double()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    r = torch.randn(4, 5, 8, 8, dtype=torch.float64)
    decisions = {}
    for cd in (0, 1):
        m = copy.deepcopy(model)
        opt = AdamP(m.parameters(), channel_dim=cd)
        (m(x) * r).sum().backward()
        opt.step()
        decisions[cd] = opt.projection_decisions(m.named_parameters())["0.weight"]
    assert decisions == {0: "layer", 1: "channel"}


@pytest.mark.parametrize("small_numel", [0, 10**9])
@pytest.mark.parametrize("cls", [AdamP, SGDP])
def test_flattened_and_per_tensor_statistics_agree(
    cls: type, small_numel: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batched, "SMALL_NUMEL", small_numel)
    _batched._layout.cache_clear()
    kw = {"lr": 1e-2, "weight_decay": 1e-2} | ({"momentum": 0.9} if cls is SGDP else {})
    a, data = _problem()
    b = copy.deepcopy(a)
    oa, ob = cls(a.parameters(), foreach=True, **kw), cls(b.parameters(), foreach=False, **kw)
    _train(a, oa, data, steps=10)
    _train(b, ob, data, steps=10)
    _batched._layout.cache_clear()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    assert oa.projection_decisions() == ob.projection_decisions()


def test_decisions_are_free_of_data_dependent_branches() -> None:
    """fullgraph=True fails on any host synchronisation or Python branch on a tensor value."""

    def decide(
        stats: torch.Tensor, r2t: torch.Tensor, k: torch.Tensor, n: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return projection_scales(stats, r2t, k, n, delta=0.1, eps=1e-8, mode="auto")

    compiled = torch.compile(decide, backend="eager", fullgraph=True)
    gen = torch.Generator().manual_seed(0)
    w, g = torch.randn(6, 9, generator=gen), torch.randn(6, 9, generator=gen)
    stats = torch.cat(
        [
            row_statistics(g, w, g),
            row_statistics(g - ((g * w).sum(1) / (w * w).sum(1))[:, None] * w, w, g),
        ],
        1,
    )
    r2t = torch.tensor([0] * 6 + [1] * 6)
    k, n = torch.tensor([9.0, 9.0]), torch.tensor([54.0, 54.0])
    codes, scale = compiled(stats, r2t, k, n)
    ref_codes, ref_scale = decide(stats, r2t, k, n)
    assert codes.tolist() == ref_codes.tolist() == [0, 1]
    torch.testing.assert_close(scale, ref_scale)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_decides_like_float32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.Linear(16, 3))
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    out = {}
    for dt in (torch.float32, dtype):
        m = copy.deepcopy(model).to(dt)
        opt = AdamP(m.parameters(), lr=1e-2)
        nn.functional.cross_entropy(m(x.to(dt)).float(), y).backward()
        opt.step()
        out[dt] = opt.projection_decisions(m.named_parameters())
        assert m[0].weight.dtype == dt
    assert out[dtype] == out[torch.float32]
    assert out[dtype]["0.weight"] == "channel"


@pytest.mark.parametrize("small_numel", [0, 10**9])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_batched_adamp_paths_equal_the_per_tensor_loop(
    small_numel: int, nesterov: bool, maximize: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large tensors are stepped one at a time, small ones on a flattened buffer: both equal the loop."""
    monkeypatch.setattr(_batched, "SMALL_NUMEL", small_numel)
    _batched._layout.cache_clear()
    kw = {"lr": 1e-2, "weight_decay": 1e-2, "nesterov": nesterov, "maximize": maximize}
    a, data = _problem(3)
    b = copy.deepcopy(a)
    oa, ob = AdamP(a.parameters(), foreach=True, **kw), AdamP(b.parameters(), foreach=False, **kw)
    _train(a, oa, data, steps=10)
    _train(b, ob, data, steps=10)
    _batched._layout.cache_clear()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(oa.state[p][key], ob.state[q][key], rtol=0, atol=1e-12)
    assert oa.projection_decisions() == ob.projection_decisions()


@pytest.mark.parametrize("channel_dim", [0, 1])
def test_segment_sums_equal_per_tensor_row_statistics(channel_dim: int) -> None:
    """The flattened statistics (sums per row length, or index_add_) equal row_statistics."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(5, 7), (3, 7), (4, 2, 3, 3), (6, 4), (2, 7), (8, 2, 3, 3), (3, 1)]
    ts = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(3)]
    g, w, u = ts
    w[2] = w[2].to(memory_format=torch.channels_last)
    layout = _batched._layout(
        tuple(t.shape for t in w), channel_dim, torch.device("cpu"), torch.float64
    )
    assert layout.n_small == len(shapes)
    assert (layout.segments is not None) == (channel_dim == 0)
    order = list(layout.order)
    got = _batched._stats(
        layout, [g[i] for i in order], [w[i] for i in order], [u[i] for i in order], channel_dim
    )
    want = torch.cat([row_statistics(g[i], w[i], u[i], channel_dim) for i in order], dim=1)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-14)

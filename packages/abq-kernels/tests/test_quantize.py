"""Quantizer math: a port of the official UniformAffineQuantizer, bit balance, levels."""

from __future__ import annotations

import itertools
import math

import abq_kernels as ak
import pytest
import torch


def official_fake_quant(
    x: torch.Tensor, n_bits: int, up: torch.Tensor | None = None, low: torch.Tensor | None = None
) -> torch.Tensor:
    """Independent transcription of the official per-row asymmetric quantizer (incl. bit balance)."""
    xmin, xmax = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    if up is not None and low is not None:
        xmax, xmin = torch.sigmoid(up) * xmax, torch.sigmoid(low) * xmin
    qmax = 2**n_bits - 1 + (1 if n_bits <= 2 else 0)
    scale = ((xmax - xmin) / (2**n_bits if n_bits <= 2 else 2**n_bits - 1)).clamp(min=1e-5, max=1e4)
    zp = (-xmin / scale).clamp(min=-1e4, max=1e4).round()
    q = ((x / scale).round() + zp).clamp(0, qmax)
    out: torch.Tensor = (q - zp) * scale
    return out


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_matches_official_quantizer(bits: int) -> None:
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(16, 64, generator=g)
    up, low = torch.randn(16, 1, generator=g) + 3, torch.randn(16, 1, generator=g) + 3
    ours = ak.fake_quantize(
        w, bits, bit_balance=bits <= 2, upper=torch.sigmoid(up), lower=torch.sigmoid(low)
    )
    torch.testing.assert_close(ours, official_fake_quant(w, bits, up, low), rtol=0, atol=1e-6)


def test_bit_balance_levels_and_storage() -> None:
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    q2 = ak.quantize(w, 2)
    q2s = ak.quantize(w, 2, bit_balance=True)
    assert int(q2.codes.max()) == 3 and q2.levels == 4 and q2.storage_bits == 2
    assert int(q2s.codes.max()) == 4 and q2s.levels == 5 and q2s.storage_bits == 3
    # five levels centred on the zero point: {-2, ..., 2} for symmetric data
    assert q2s.zero is not None
    assert sorted(set((q2s.codes.int() - q2s.zero).flatten().tolist())) == [-2, -1, 0, 1, 2]


def test_bit_balance_lowers_weight_error() -> None:
    w = torch.randn(512, 1024, generator=torch.Generator().manual_seed(0))

    def rel(bits: int, bal: bool) -> float:
        return float(((ak.fake_quantize(w, bits, bit_balance=bal) - w) ** 2).sum() / (w**2).sum())

    w2, w2s, w3 = rel(2, False), rel(2, True), rel(3, False)
    assert w3 < w2s < 0.8 * w2  # five levels cut the 2-bit min/max error by well over 20 %


@pytest.mark.parametrize(
    ("gran", "gs"), [("channel", None), ("token", None), ("group", 16), ("tensor", None)]
)
@pytest.mark.parametrize("symmetric", [False, True])
def test_dequantize_equals_fake_quantize(gran: str, gs: int | None, symmetric: bool) -> None:
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(1))
    qt = ak.quantize(x, 4, granularity=gran, group_size=gs, symmetric=symmetric)  # type: ignore[arg-type]
    torch.testing.assert_close(
        qt.dequantize(),
        ak.fake_quantize(x, 4, granularity=gran, group_size=gs, symmetric=symmetric),  # type: ignore[arg-type]
        rtol=0,
        atol=1e-6,
    )  # type: ignore[arg-type]
    assert qt.signed == symmetric
    lo, hi = (-8, 7) if symmetric else (0, 15)
    assert int(qt.codes.min()) >= lo and int(qt.codes.max()) <= hi


def test_error_shrinks_with_bits() -> None:
    x = torch.randn(32, 128, generator=torch.Generator().manual_seed(2))
    errs = [float((ak.fake_quantize(x, b) - x).abs().max()) for b in range(1, 9)]
    assert all(a > b for a, b in itertools.pairwise(errs))
    # max error is at most half a step: (max - min) / (2^b - 1) / 2
    step = (x.amax(1) - x.amin(1)) / 255
    assert errs[-1] <= float(step.max()) / 2 + 1e-6


def test_ste_gradient_reaches_clipping_factors() -> None:
    w = torch.randn(8, 32, generator=torch.Generator().manual_seed(3))
    up = torch.full((8, 1), 4.0, requires_grad=True)
    loss = (
        (ak.fake_quantize(w, 3, upper=torch.sigmoid(up), lower=torch.sigmoid(up)) - w) ** 2
    ).sum()
    loss.backward()  # type: ignore[no-untyped-call]
    assert up.grad is not None and torch.isfinite(up.grad).all() and up.grad.abs().sum() > 0
    assert math.isclose(float(torch.sigmoid(torch.tensor(4.0))), 0.98201, rel_tol=1e-4)

r"""Uniform affine quantization at any bit width, with ABQ-LLM's bit balance.

For a row (or group) :math:`x` with clipping factors :math:`\gamma, \beta \in (0, 1]` (learnable
weight clipping, LWC: :math:`\gamma = \sigma(u)`, :math:`\beta = \sigma(l)`, :math:`u = l = 4` at init):

.. math::

    x_{\max}' = \gamma \max x,\quad x_{\min}' = \beta \min x,\quad
    s = \frac{x_{\max}' - x_{\min}'}{q_{\max}},\quad z = \mathrm{round}(-x_{\min}' / s),

    q = \mathrm{clamp}(\mathrm{round}(x / s) + z,\ 0,\ q_{\max}),\qquad \hat x = s (q - z).

Plain ``b``-bit asymmetric quantization has :math:`q_{\max} = 2^b - 1` (``2^b`` levels). Bit
balance (the paper's W2*) uses :math:`q_{\max} = 2^b`: ``2^b + 1`` levels, symmetric around the
zero point (five levels {-2, ..., 2} for b = 2), stored and run with ``b + 1`` bits. Symmetric
quantization uses signed codes :math:`q \in [-2^{b-1}, 2^{b-1} - 1]` with
:math:`s = \max|x| / (2^{b-1} - 1)` and no zero point. Scales are clamped to ``[1e-5, 1e4]`` as in
the official code. Rounding uses a straight-through estimator so LWC factors train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from abq_kernels.kernels import check_bits

CLIPMIN = 1e-5
Granularity = Literal["channel", "token", "group", "tensor"]
_GRANULARITIES = ("channel", "token", "group", "tensor")


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round with the straight-through gradient (identity)."""
    return (x.round() - x).detach() + x


def num_levels(bits: int, *, bit_balance: bool = False) -> int:
    """Number of quantization levels: ``2**bits``, or ``2**bits + 1`` with bit balance."""
    return (1 << bits) + (1 if bit_balance else 0)


def storage_bits(bits: int, *, bit_balance: bool = False) -> int:
    """Bits per code in memory and in the kernel (``bits + 1`` with bit balance: W2* runs as W3)."""
    return bits + 1 if bit_balance else bits


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer codes with their scales and zero points.

    Attributes:
        codes: (rows, cols) integer codes: unsigned ``[0, levels - 1]`` (asymmetric, uint8) or
            signed two's complement (symmetric, int8).
        scale: float32 (rows, groups) scales (groups = 1 unless per-group; (1, 1) per tensor).
        zero: int32 (rows, groups) zero points, or None (symmetric).
        bits: nominal bit width (2 for W2*).
        storage_bits: bits the kernel runs with (3 for W2*).
        levels: number of levels.
        group_size: columns per group (= cols unless per-group).
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor | None
    bits: int
    storage_bits: int
    levels: int
    group_size: int

    @property
    def signed(self) -> bool:
        return self.zero is None

    def dequantize(self) -> torch.Tensor:
        """:math:`\\hat x = s (q - z)` as float32, same shape as the quantized tensor."""
        rows, cols = self.codes.shape
        q = self.codes.to(torch.float32).view(rows, -1, self.group_size)
        if self.zero is not None:
            q = q - self.zero.to(torch.float32)[..., None]
        return (q * self.scale[..., None]).view(rows, cols)


def affine_params(
    xmin: torch.Tensor, xmax: torch.Tensor, bits: int, *, symmetric: bool, bit_balance: bool
) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
    """Scale, rounded zero point (None if symmetric), qmin and qmax from (clipped) ranges."""
    if symmetric:
        qmax = (1 << (bits - 1)) - 1
        scale = (torch.maximum(xmax.abs(), xmin.abs()) / qmax).clamp(CLIPMIN, 1e4)
        return scale, None, -(1 << (bits - 1)), qmax
    qmax = num_levels(bits, bit_balance=bit_balance) - 1
    scale = ((xmax - xmin) / qmax).clamp(CLIPMIN, 1e4)
    zero = round_ste((-xmin / scale).clamp(-1e4, 1e4))
    return scale, zero, 0, qmax


def _grouped(x: torch.Tensor, granularity: str, group_size: int | None) -> tuple[torch.Tensor, int]:
    rows, cols = x.shape
    if granularity == "tensor":
        return x.reshape(1, 1, rows * cols), cols
    if granularity in ("channel", "token"):
        return x.reshape(rows, 1, cols), cols
    assert group_size is not None
    return x.reshape(rows, cols // group_size, group_size), group_size


def _validate(
    x: object,
    bits: object,
    granularity: object,
    group_size: object,
    symmetric: bool,
    bit_balance: bool,
) -> int:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {x!r:.80}")
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (rows x cols), got shape {tuple(x.shape)}")
    b = check_bits("bits", bits)
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity must be one of {_GRANULARITIES}, got {granularity!r}")
    if granularity == "group":
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(
                f"group_size must be a positive int for granularity='group', got {group_size!r}"
            )
        if x.shape[1] % group_size:
            raise ValueError(f"group_size={group_size} must divide the {x.shape[1]} columns of x")
    elif group_size is not None:
        raise ValueError(f"group_size is only used with granularity='group', got {group_size!r}")
    if symmetric and bit_balance:
        raise ValueError("bit_balance applies to asymmetric quantization; got symmetric=True")
    if symmetric and b < 2:
        raise ValueError(f"symmetric quantization needs bits >= 2, got {b}")
    if bit_balance and b > 7:
        raise ValueError(f"bit_balance stores bits + 1 <= 8 bits, so bits must be <= 7, got {b}")
    return b


def fake_quantize(
    x: torch.Tensor,
    bits: int,
    *,
    granularity: Granularity = "channel",
    group_size: int | None = None,
    symmetric: bool = False,
    bit_balance: bool = False,
    upper: torch.Tensor | None = None,
    lower: torch.Tensor | None = None,
) -> torch.Tensor:
    """Quantize-dequantize ``x`` (differentiable through STE and the clipping factors).

    Args:
        upper, lower: clipping factors :math:`\\gamma, \\beta` (already through the sigmoid),
            broadcastable to (rows, groups, 1); None means 1 (min/max).
    """
    b = _validate(x, bits, granularity, group_size, symmetric, bit_balance)
    g, _ = _grouped(x, granularity, group_size)
    xmax, xmin = g.amax(-1, keepdim=True), g.amin(-1, keepdim=True)
    if upper is not None:
        xmax = xmax * upper.reshape(xmax.shape[0], -1, 1)
    if lower is not None:
        xmin = xmin * lower.reshape(xmin.shape[0], -1, 1)
    scale, zero, qmin, qmax = affine_params(
        xmin, xmax, b, symmetric=symmetric, bit_balance=bit_balance
    )
    q = round_ste(g / scale)
    if zero is not None:
        q = q + zero
    q = q.clamp(qmin, qmax)
    if zero is not None:
        q = q - zero
    return (q * scale).reshape(x.shape)


@torch.no_grad()
def quantize(
    x: torch.Tensor,
    bits: int,
    *,
    granularity: Granularity = "channel",
    group_size: int | None = None,
    symmetric: bool = False,
    bit_balance: bool = False,
    upper: torch.Tensor | None = None,
    lower: torch.Tensor | None = None,
) -> QuantizedTensor:
    """Quantize a 2-D float tensor to integer codes.

    Args:
        x: (rows, cols) float tensor: a weight (out x in) or activations (tokens x features).
        bits: 1..8 (1..7 with ``bit_balance``; 2..8 symmetric).
        granularity: ``"channel"`` (per output row of a weight) / ``"token"`` (per row of
            activations; the same computation), ``"group"`` (``group_size`` columns per scale within
            each row), or ``"tensor"``.
        symmetric: signed codes, no zero point (else unsigned codes with a zero point).
        bit_balance: ``2**bits + 1`` levels stored in ``bits + 1`` bits (W2* for bits=2).
        upper, lower: LWC clipping factors in (0, 1], shape (rows, groups) or broadcastable.

    Returns:
        :class:`QuantizedTensor`; its ``dequantize()`` equals :func:`fake_quantize` of the same call.
    """
    b = _validate(x, bits, granularity, group_size, symmetric, bit_balance)
    rows, cols = x.shape
    g, gs = _grouped(x.float(), granularity, group_size)
    xmax, xmin = g.amax(-1, keepdim=True), g.amin(-1, keepdim=True)
    if upper is not None:
        xmax = xmax * upper.float().reshape(xmax.shape[0], -1, 1)
    if lower is not None:
        xmin = xmin * lower.float().reshape(xmin.shape[0], -1, 1)
    scale, zero, qmin, qmax = affine_params(
        xmin, xmax, b, symmetric=symmetric, bit_balance=bit_balance
    )
    q = (g / scale).round()
    if zero is not None:
        q = q + zero
    q = q.clamp(qmin, qmax).reshape(-1, gs if granularity != "tensor" else cols)
    if granularity == "tensor":
        q = q.reshape(rows, cols)
        scale_rg = scale.reshape(1, 1).expand(rows, 1)
        zero_rg = None if zero is None else zero.reshape(1, 1).expand(rows, 1)
        gs = cols
    else:
        q = q.reshape(rows, cols)
        scale_rg = scale.reshape(rows, -1)
        zero_rg = None if zero is None else zero.reshape(rows, -1)
    return QuantizedTensor(
        codes=q.to(torch.int8 if symmetric else torch.uint8),
        scale=scale_rg.contiguous(),
        zero=None if zero_rg is None else zero_rg.to(torch.int32).contiguous(),
        bits=b,
        storage_bits=storage_bits(b, bit_balance=bit_balance),
        levels=num_levels(b, bit_balance=bit_balance) if not symmetric else (1 << b),
        group_size=gs,
    )

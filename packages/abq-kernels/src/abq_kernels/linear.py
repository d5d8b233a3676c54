r"""``QuantLinear``: a linear layer that stores packed weight bit planes and runs on the kernels.

Weights are quantized per output channel (or per group), asymmetric with zero points
:math:`(s_w, z_w)`; activations are quantized dynamically per token, asymmetric
:math:`(s_x, z_x)`, at ``a_bits``. With integer codes :math:`Q_x, Q_w` the output is

.. math::

    y_{tn} = \sum_g s_{x,t}\, s_{w,ng} \Big[ \sum_{k \in g} Q_{x,tk} Q_{w,nk}
             - z_{w,ng} \sum_{k\in g} Q_{x,tk} - z_{x,t} \sum_{k\in g} Q_{w,nk} + |g|\, z_{x,t} z_{w,ng} \Big] + b_n

where the first sum is the exact int32 bit-plane GEMM and the corrections are exact int64.
It equals ``fake_quantize(x) @ dequantize(W).T + b`` up to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from abq_kernels.kernels import gemm_packed, max_k, pack
from abq_kernels.quantizer import QuantizedTensor, quantize


class QuantLinear(nn.Module):
    """W{w_bits}A{a_bits} linear layer on packed bit planes (inference only).

    Build it with :meth:`from_linear`. Buffers (all saved in ``state_dict``): ``w_planes``
    (groups, storage_bits, out, words) int64, ``w_scale``/``w_zero``/``w_rowsum``
    (out, groups), ``bias``.

    Args of :meth:`from_linear`:
        w_bits: weight bits 1..8 (1..7 with ``bit_balance``).
        a_bits: activation bits 1..8.
        group_size: columns per weight scale (None: per output channel).
        bit_balance: ``2**w_bits + 1`` weight levels stored in ``w_bits + 1`` bits (W2*).
        upper, lower: LWC clipping factors in (0, 1] per output row (or row x group).
        backend: kernel backend, None = the compiled kernel of the input's device.
    """

    w_planes: torch.Tensor
    w_scale: torch.Tensor
    w_zero: torch.Tensor
    w_rowsum: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        w_bits: int = 4,
        a_bits: int = 8,
        group_size: int | None = None,
        bit_balance: bool = False,
        bias: bool = True,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        from abq_kernels.quantizer import _validate, storage_bits

        probe = torch.zeros(1, in_features)
        _validate(
            probe, w_bits, "group" if group_size else "channel", group_size, False, bit_balance
        )
        from abq_kernels.kernels import check_bits

        check_bits("a_bits", a_bits)
        self.in_features, self.out_features = in_features, out_features
        self.w_bits, self.a_bits, self.bit_balance = w_bits, a_bits, bit_balance
        self.storage_bits = storage_bits(w_bits, bit_balance=bit_balance)
        self.group_size = group_size or in_features
        self.backend = backend
        kg = self.group_size
        if kg > max_k(a_bits, self.storage_bits):
            raise ValueError(
                f"in_features/group_size={kg} overflows int32 accumulation at "
                f"W{self.storage_bits}A{a_bits} (max {max_k(a_bits, self.storage_bits)}); use group_size"
            )
        groups = in_features // kg
        from abq_kernels.reference import packed_words

        self.register_buffer(
            "w_planes",
            torch.zeros(
                groups, self.storage_bits, out_features, packed_words(kg), dtype=torch.int64
            ),
        )
        self.register_buffer("w_scale", torch.ones(out_features, groups))
        self.register_buffer("w_zero", torch.zeros(out_features, groups, dtype=torch.int64))
        self.register_buffer("w_rowsum", torch.zeros(out_features, groups, dtype=torch.int64))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        w_bits: int = 4,
        a_bits: int = 8,
        group_size: int | None = None,
        bit_balance: bool = False,
        upper: torch.Tensor | None = None,
        lower: torch.Tensor | None = None,
        backend: str | None = None,
    ) -> QuantLinear:
        """Quantize an ``nn.Linear`` (its weight is read, never modified)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        layer = cls(
            linear.in_features,
            linear.out_features,
            w_bits=w_bits,
            a_bits=a_bits,
            group_size=group_size,
            bit_balance=bit_balance,
            bias=linear.bias is not None,
            backend=backend,
        )
        layer.set_weight(linear.weight.detach(), upper=upper, lower=lower)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().float().clone()
        return layer.to(linear.weight.device)

    @torch.no_grad()
    def set_weight(
        self,
        weight: torch.Tensor,
        *,
        upper: torch.Tensor | None = None,
        lower: torch.Tensor | None = None,
    ) -> QuantizedTensor:
        """Quantize ``weight`` (out x in) into the packed buffers; returns the quantized weight."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(
                f"weight must have shape ({self.out_features}, {self.in_features}), got {tuple(weight.shape)}"
            )
        grouped = self.group_size != self.in_features
        qw = quantize(
            weight.float(),
            self.w_bits,
            granularity="group" if grouped else "channel",
            group_size=self.group_size if grouped else None,
            bit_balance=self.bit_balance,
            upper=upper,
            lower=lower,
        )
        codes = qw.codes.to(torch.int32)
        g = self.w_planes.shape[0]
        planes = [
            pack(
                codes[:, i * self.group_size : (i + 1) * self.group_size].contiguous().cpu(),
                self.storage_bits,
                backend="cpu",
            )
            for i in range(g)
        ]
        self.w_planes = torch.stack(planes).to(self.w_planes.device)
        self.w_scale = qw.scale.to(self.w_scale.device)
        assert qw.zero is not None
        self.w_zero = qw.zero.to(torch.int64).to(self.w_zero.device)
        self.w_rowsum = (
            codes.view(self.out_features, g, self.group_size)
            .sum(-1, dtype=torch.int64)
            .to(self.w_zero.device)
        )
        return qw

    def dequantized_weight(self) -> torch.Tensor:
        """The float weight the layer computes with, :math:`s_w (Q_w - z_w)` (out x in)."""
        from abq_kernels.reference import WORD

        g, bits, n, words = self.w_planes.shape
        shifts = torch.arange(WORD, device=self.w_planes.device)
        codes = torch.zeros(g, n, words * WORD, dtype=torch.int64, device=self.w_planes.device)
        for b in range(bits):
            codes |= ((self.w_planes[:, b, :, :, None] >> shifts) & 1).reshape(g, n, -1) << b
        codes = codes[..., : self.group_size].permute(1, 0, 2)  # (n, g, group)
        w = (codes - self.w_zero[..., None]).float() * self.w_scale[..., None]
        return w.reshape(n, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {x!r:.80}")
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must end in in_features={self.in_features}, got shape {tuple(x.shape)}"
            )
        if x.device != self.w_planes.device:
            raise ValueError(f"x is on {x.device} but the layer is on {self.w_planes.device}")
        lead = x.shape[:-1]
        x2 = x.detach().reshape(-1, self.in_features).float()
        if x2.shape[0] == 0:
            return x.new_zeros(*lead, self.out_features)
        qx = quantize(x2, self.a_bits, granularity="token")
        assert qx.zero is not None
        xcodes = qx.codes.to(torch.int32)
        zx = qx.zero.to(torch.int64)  # (T, 1)
        kg = self.group_size
        y = torch.zeros(x2.shape[0], self.out_features, dtype=torch.float64, device=x.device)
        for gi in range(self.w_planes.shape[0]):
            xc = xcodes[:, gi * kg : (gi + 1) * kg].contiguous()
            xp = pack(xc, self.a_bits, backend=self.backend)
            acc = gemm_packed(
                xp,
                self.w_planes[gi],
                x_bits=self.a_bits,
                w_bits=self.storage_bits,
                signed=False,
                backend=self.backend,
            ).to(torch.int64)
            zw = self.w_zero[:, gi][None, :]
            acc = (
                acc
                - zw * xc.sum(1, dtype=torch.int64)[:, None]
                - zx * self.w_rowsum[:, gi][None, :]
                + kg * zx * zw
            )
            y += acc.double() * self.w_scale[:, gi].double()[None, :]
        y = y * qx.scale.double()
        out = y.to(x.dtype)
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        star = "*" if self.bit_balance else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"W{self.w_bits}{star}A{self.a_bits} (stored {self.storage_bits} bits), group_size={self.group_size}, "
            f"backend={self.backend}"
        )

    def memory_bits_per_weight(self) -> float:
        """Storage cost per weight including scales and zero points (fp16 + int8 per group)."""
        return self.storage_bits + (16 + 8) / self.group_size

    def __reduce_ex__(self, protocol: Any) -> Any:  # keep default pickling of nn.Module
        return super().__reduce_ex__(protocol)

r"""Public bit-plane GEMM: ``gemm`` on integer codes, ``pack`` + ``gemm_packed`` on bit planes.

``gemm(x_q, w_q, x_bits=a, w_bits=w)`` returns the exact int32 product
:math:`(X - z_x \mathbf{1}^\top)(W - z_w \mathbf{1}^\top)^\top` of integer codes
``x_q`` (M x K) and ``w_q`` (N x K), computed as :math:`a \cdot w` binary GEMMs (popcount of AND
over packed words, recombined with :math:`\pm 2^{i+j}`). Zero points use

.. math::

    \sum_k (x_k - z_x)(w_k - z_w) = \sum_k x_k w_k - z_w \sum_k x_k - z_x \sum_k w_k + K z_x z_w .

Every backend gives the same integers; ``backend=None`` picks the compiled kernel of the
operands' device (``"cpu"`` or ``"cuda"``) and raises if it is unavailable, never substituting
another. Accumulation is int32 (as on the GPU); inputs whose worst case
:math:`K (2^a - 1)(2^w - 1)` exceeds :math:`2^{31} - 1` are refused.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import torch

from abq_kernels import reference
from abq_kernels._backend import BACKENDS, extension, require_backend

INT32_MAX = 2**31 - 1
_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_bits(name: str, bits: object) -> int:
    """Validate a bit width (an int in 1..8) and return it."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an int in 1..8, got {bits!r}")
    if not 1 <= int(bits) <= 8:
        raise ValueError(f"{name} must be in 1..8, got {bits}")
    return int(bits)


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest integer code of a ``bits``-bit operand."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def max_abs_accumulator(k: int, x_bits: int, w_bits: int) -> int:
    """Bound on every partial sum of the int32 accumulator: :math:`K (2^a - 1)(2^w - 1)`."""
    return k * ((1 << x_bits) - 1) * ((1 << w_bits) - 1)


def max_k(x_bits: int, w_bits: int) -> int:
    """Largest K whose accumulation is guaranteed to fit int32 (33,025 for W8A8)."""
    return INT32_MAX // (((1 << x_bits) - 1) * ((1 << w_bits) - 1))


def _as_codes(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if value.dtype not in _INT_DTYPES:
        raise TypeError(
            f"{name} must hold integer codes (int8/int16/int32/int64/uint8), got dtype {value.dtype}"
        )
    if value.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x K), got shape {tuple(value.shape)}")
    return value


def _check_range(name: str, value: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    if value.numel():
        lo, hi = code_range(bits, signed)
        vmin, vmax = int(value.min()), int(value.max())
        if vmin < lo or vmax > hi:
            kind = "signed" if signed else "unsigned"
            raise ValueError(
                f"{name} has codes in [{vmin}, {vmax}], outside the {kind} {bits}-bit range [{lo}, {hi}]"
            )
    return value


def _as_zero(
    name: str, value: Any, rows: int, bits: int, signed: bool, device: torch.device
) -> torch.Tensor | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = torch.full((rows,), value, dtype=torch.int64, device=device)
    if not isinstance(value, torch.Tensor) or value.dtype not in _INT_DTYPES:
        raise TypeError(
            f"{name} must be an int or an integer tensor of shape ({rows},), got {value!r}"
        )
    if value.shape != (rows,):
        raise ValueError(f"{name} must have shape ({rows},), got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but the codes are on {device}")
    lo, hi = code_range(bits, signed)
    if value.numel() and (int(value.min()) < lo or int(value.max()) > hi):
        raise ValueError(
            f"{name} must lie in the code range [{lo}, {hi}], got [{int(value.min())}, {int(value.max())}]"
        )
    return value.to(torch.int64)


def _resolve_backend(backend: str | None, device: torch.device) -> str:
    if backend is None:
        backend = "cuda" if device.type == "cuda" else "cpu"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "cuda" and device.type != "cuda":
        raise ValueError(f"backend 'cuda' needs CUDA tensors, got tensors on {device}")
    if backend in ("cpu", "numpy") and device.type != "cpu":
        raise ValueError(f"backend {backend!r} needs CPU tensors, got tensors on {device}")
    require_backend(backend)
    return backend


def pack(codes: torch.Tensor, bits: int, *, backend: str | None = None) -> torch.Tensor:
    """Pack integer codes (rows x K) into ``(bits, rows, words)`` int64 bit planes.

    Codes are taken as two's complement, so signed and unsigned codes pack the same way; the
    caller states signedness in :func:`gemm_packed`. K is zero-padded to a multiple of 128.
    """
    bits = check_bits("bits", bits)
    if not isinstance(codes, torch.Tensor) or codes.dtype not in _INT_DTYPES or codes.ndim != 2:
        raise TypeError(f"codes must be a 2-D integer torch.Tensor, got {codes!r}")
    be = _resolve_backend(backend, codes.device)
    rows, k = codes.shape
    if be == "numpy":
        return torch.from_numpy(reference.pack_numpy(codes.numpy(), bits))
    if be == "torch":
        return reference.pack_torch(codes, bits)
    c32 = codes.to(torch.int32).contiguous()
    out = torch.empty(
        (bits, rows, reference.packed_words(k)), dtype=torch.int64, device=codes.device
    )
    ext = extension()
    if be == "cpu":
        ext.pack_cpu(c32, bits, out)
    else:
        with torch.cuda.device(codes.device):
            ext.pack_cuda(c32, bits, out, torch.cuda.current_stream().cuda_stream)
    return out


def gemm_packed(
    xp: torch.Tensor,
    wp: torch.Tensor,
    *,
    x_bits: int,
    w_bits: int,
    signed: bool = True,
    backend: str | None = None,
) -> torch.Tensor:
    """Bit-plane GEMM of packed planes ``xp`` (a, M, words) and ``wp`` (w, N, words) -> int32 (M, N).

    No range or overflow check on the codes here (they are packed already): :func:`gemm` checks.
    """
    x_bits, w_bits = check_bits("x_bits", x_bits), check_bits("w_bits", w_bits)
    for name, p, b in (("xp", xp, x_bits), ("wp", wp, w_bits)):
        if not isinstance(p, torch.Tensor) or p.dtype != torch.int64 or p.ndim != 3:
            raise TypeError(f"{name} must be a 3-D int64 tensor of packed planes, got {p!r}")
        if p.shape[0] != b:
            raise ValueError(f"{name} has {p.shape[0]} planes but its bits argument is {b}")
    if xp.shape[2] != wp.shape[2]:
        raise ValueError(f"xp and wp pack different K: {xp.shape[2]} vs {wp.shape[2]} words")
    if xp.device != wp.device:
        raise ValueError(f"xp is on {xp.device} but wp is on {wp.device}")
    be = _resolve_backend(backend, xp.device)
    if be == "numpy":
        return torch.from_numpy(
            reference.gemm_planes_numpy(
                xp.numpy(), wp.numpy(), x_bits=x_bits, w_bits=w_bits, signed=signed
            )
        )
    if be == "torch":
        return reference.gemm_planes_torch(xp, wp, x_bits=x_bits, w_bits=w_bits, signed=signed)
    xp, wp = xp.contiguous(), wp.contiguous()
    out = torch.empty((xp.shape[1], wp.shape[1]), dtype=torch.int32, device=xp.device)
    ext = extension()
    if be == "cpu":
        ext.gemm_cpu(xp, wp, x_bits, w_bits, bool(signed), out)
    else:
        with torch.cuda.device(xp.device):
            ext.gemm_cuda(
                xp, wp, x_bits, w_bits, bool(signed), out, torch.cuda.current_stream().cuda_stream
            )
    return out


@overload
def gemm(
    x_q: torch.Tensor,
    w_q: torch.Tensor,
    *,
    x_bits: int,
    w_bits: int,
    signed: bool = ...,
    backend: str | None = ...,
    x_zero: Any = ...,
    w_zero: Any = ...,
) -> torch.Tensor: ...
@overload
def gemm(
    x_q: np.ndarray,
    w_q: np.ndarray,
    *,
    x_bits: int,
    w_bits: int,
    signed: bool = ...,
    backend: str | None = ...,
    x_zero: Any = ...,
    w_zero: Any = ...,
) -> np.ndarray: ...


def gemm(
    x_q: Any,
    w_q: Any,
    *,
    x_bits: int,
    w_bits: int,
    signed: bool = True,
    backend: str | None = None,
    x_zero: Any = None,
    w_zero: Any = None,
) -> Any:
    """Exact int32 product ``(x_q - x_zero) @ (w_q - w_zero).T`` through the bit-plane kernels.

    Args:
        x_q: activation codes, (M, K) integer tensor (or numpy array; the result is then numpy).
        w_q: weight codes, (N, K) integer tensor on the same device.
        x_bits, w_bits: bit widths, 1..8.
        signed: codes are two's complement in ``[-2^(b-1), 2^(b-1) - 1]`` (the sign plane gets
            weight ``-2^(b-1)``); otherwise unsigned in ``[0, 2^b - 1]``.
        backend: ``"cpu"``, ``"cuda"``, ``"numpy"``, ``"torch"`` or None (the compiled kernel of the
            operands' device). An unavailable backend raises; none is substituted.
        x_zero, w_zero: optional integer zero points per row of ``x_q`` (M,) / ``w_q`` (N,), or one int.

    Non-contiguous inputs are copied to contiguous int32 (the inputs are never modified).
    """
    is_numpy = isinstance(x_q, np.ndarray)
    x_bits, w_bits = check_bits("x_bits", x_bits), check_bits("w_bits", w_bits)
    if not isinstance(signed, bool):
        raise TypeError(f"signed must be a bool, got {signed!r}")
    x, w = _as_codes("x_q", x_q), _as_codes("w_q", w_q)
    if x.device != w.device:
        raise ValueError(f"x_q is on {x.device} but w_q is on {w.device}")
    x, w = _check_range("x_q", x, x_bits, signed), _check_range("w_q", w, w_bits, signed)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x_q and w_q must share K: x_q has shape {tuple(x.shape)}, w_q has shape {tuple(w.shape)}"
        )
    (m, k), n = x.shape, w.shape[0]
    if k > max_k(x_bits, w_bits):
        raise ValueError(
            f"K={k} can overflow int32 accumulation at W{w_bits}A{x_bits}: "
            f"K*(2^{x_bits}-1)*(2^{w_bits}-1) = {max_abs_accumulator(k, x_bits, w_bits)} > 2^31-1 "
            f"(largest safe K is {max_k(x_bits, w_bits)}); split K and add the partial products in int64"
        )
    zx = _as_zero("x_zero", x_zero, m, x_bits, signed, x.device)
    zw = _as_zero("w_zero", w_zero, n, w_bits, signed, x.device)
    be = _resolve_backend(backend, x.device)
    xp = pack(x, x_bits, backend=be)
    wp = pack(w, w_bits, backend=be)
    out = gemm_packed(xp, wp, x_bits=x_bits, w_bits=w_bits, signed=signed, backend=be)
    if zx is not None or zw is not None:
        acc = out.to(torch.int64)
        if zw is not None:
            acc -= zw[None, :] * x.sum(1, dtype=torch.int64)[:, None]
        if zx is not None:
            acc -= zx[:, None] * w.sum(1, dtype=torch.int64)[None, :]
        if zx is not None and zw is not None:
            acc += k * zx[:, None] * zw[None, :]
        out = acc.to(torch.int32)
    return out.numpy() if is_numpy else out

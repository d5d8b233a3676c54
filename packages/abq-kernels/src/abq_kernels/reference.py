r"""Reference bit-plane GEMM in numpy and torch (the oracle for the compiled kernels).

An operand of ``b`` bits is split into 0/1 planes :math:`X_i` (bit ``i`` of its two's-complement
code) and

.. math::

    X W^\top = \sum_{i<a} \sum_{j<w} c_i c_j \,\mathrm{popcount}(X_i \,\&\, W_j),
    \qquad c_i = 2^i \ \text{except}\ c_{b-1} = -2^{b-1}\ \text{for signed operands.}

Packed layout (shared by every backend): ``planes[b, r, w]`` is a 64-bit word (stored as int64)
whose bit ``k`` is bit ``b`` of ``code[r, 64 w + k]`` (LSB first); K is zero-padded to a multiple
of 128 so the CUDA kernel can read the same buffer as 128-bit MMA chunks.
"""

from __future__ import annotations

import numpy as np
import torch

WORD = 64
PAD = 128


def packed_words(k: int) -> int:
    """Number of 64-bit words per packed row for reduction length ``k``."""
    return ((k + PAD - 1) // PAD) * (PAD // WORD)


def plane_coefficients(bits: int, signed: bool) -> list[int]:
    """:math:`c_b`: ``2**b``, with ``-2**(bits-1)`` for the sign plane of a signed operand."""
    coefs = [1 << b for b in range(bits)]
    if signed:
        coefs[-1] = -coefs[-1]
    return coefs


def pack_numpy(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack integer ``codes`` (rows x K) into ``(bits, rows, words)`` int64 planes."""
    rows, k = codes.shape
    words = packed_words(k)
    padded = np.zeros((rows, words * WORD), dtype=np.int64)
    padded[:, :k] = codes
    out = np.empty((bits, rows, words), dtype=np.int64)
    for b in range(bits):
        plane = ((padded >> b) & 1).astype(np.uint8)
        out[b] = np.packbits(plane, axis=1, bitorder="little").view("<u8").astype(np.int64)
    return out


def gemm_planes_numpy(
    xp: np.ndarray, wp: np.ndarray, *, x_bits: int, w_bits: int, signed: bool
) -> np.ndarray:
    """Bit-plane GEMM over packed planes with ``np.bitwise_count`` (numpy >= 2.0)."""
    x64, w64 = xp.view(np.uint64), wp.view(np.uint64)
    out = np.zeros((xp.shape[1], wp.shape[1]), dtype=np.int64)
    for i, ci in enumerate(plane_coefficients(x_bits, signed)):
        for j, cj in enumerate(plane_coefficients(w_bits, signed)):
            pc = np.bitwise_count(x64[i][:, None, :] & w64[j][None, :, :]).sum(-1, dtype=np.int64)
            out += ci * cj * pc
    return out.astype(np.int32)


_LUT = torch.tensor([bin(v).count("1") for v in range(256)], dtype=torch.uint8)


def pack_torch(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer ``codes`` (rows x K, any device) into ``(bits, rows, words)`` int64 planes."""
    rows, k = codes.shape
    words = packed_words(k)
    padded = torch.zeros((rows, words * WORD), dtype=torch.int64, device=codes.device)
    padded[:, :k] = codes
    shifts = torch.arange(WORD, dtype=torch.int64, device=codes.device)
    out = torch.empty((bits, rows, words), dtype=torch.int64, device=codes.device)
    for b in range(bits):
        plane = ((padded >> b) & 1).view(rows, words, WORD)
        out[b] = (plane << shifts).sum(-1)  # disjoint bits: the sum is the bitwise OR
    return out


def gemm_planes_torch(
    xp: torch.Tensor, wp: torch.Tensor, *, x_bits: int, w_bits: int, signed: bool
) -> torch.Tensor:
    """Bit-plane GEMM over packed planes in torch (popcount through a 256-entry byte table)."""
    m, n = xp.shape[1], wp.shape[1]
    lut = _LUT.to(xp.device)
    out = torch.zeros((m, n), dtype=torch.int64, device=xp.device)
    chunk = max(1, (1 << 22) // max(1, n * xp.shape[2] * 8))  # bound the m x n x bytes buffer
    for i, ci in enumerate(plane_coefficients(x_bits, signed)):
        for j, cj in enumerate(plane_coefficients(w_bits, signed)):
            for s in range(0, m, chunk):
                both = xp[i, s : s + chunk, None, :] & wp[j, None, :, :]
                pc = lut[both.contiguous().view(torch.uint8).long()].sum(-1, dtype=torch.int64)
                out[s : s + chunk] += ci * cj * pc.view(-1, n)
    return out.to(torch.int32)

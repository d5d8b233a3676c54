"""The merging math on task-vector matrices, as plain functions with no hidden state.

Every function here takes task vectors as a matrix ``tv`` of shape ``(n, d)`` (one row per task,
``τ_i = θ_i − θ_0`` flattened) in float32 or float64. Statistics that depend on the whole row (order
statistics, minima and maxima) are *arguments* of the elementwise functions, so the same
elementwise code runs on a whole flattened model (``scope="global"``, the official setting), on one
tensor (``scope="tensor"``), or on one tensor at a time with statistics gathered by a streaming
pass over files (:mod:`pcb_merge.streaming`).

PCB-Merging (Du et al., NeurIPS 2024), as the official code computes it::

    a_i   = clip(|τ_i|, lo_i, hi_i)          lo_i = sort(|τ_i|)[int(d·o)]
                                              hi_i = sort(|τ_i|)[int(d·(1−o)−1)]
    ĉ_i   = sign(τ_i) · a_i                   (the merged values use the clamped ĉ)
    ñ_i   = (a_i − lo_i) / (hi_i − lo_i)      (min–max normalisation; min/max of a_i are lo_i/hi_i)
    intra = exp(n · ñ_i²)
    inter = tanh(τ_i ⊙ Σ_j τ_j)                        "sum"        (pcb-merging.py, NLP)
          = tanh(τ_i ⊙ Σ_j sign(τ_j) ñ_j)               "normalized" (vision pcb.py)
          = Σ_j tanh(τ̃_i ⊙ τ̃_j),  τ̃ = sign(τ) ñ       "pairwise"   (vision pcb_ES.py)
    β_i   = intra ⊙ inter
    s_i   = (clip(β_i, q_i, M_i) − q_i) / (M_i − q_i)   q_i = sort(β_i)[int(d·(1−r))], M_i = max β_i
    τ_m   = Σ_i λ_i ĉ_i s_i / max(Σ_i s_i, 1e-12),      θ = θ_0 + τ_m

Degenerate rows (documented handling, never NaN): when ``hi_i == lo_i`` (a zero or constant
``|τ_i|``) we set ``ñ_i = 0``; when ``M_i == q_i`` no coordinate lies strictly above the threshold,
so we set ``s_i = 0`` (task ``i`` contributes nothing). The official code divides by zero there.

TIES-Merging (Yadav et al., 2023) as in the official PCB/TIES repositories::

    k      = d − int(d·K);   t_i = kthvalue(|τ_i|, k)      (1-based; K = density)
    τ̂_i    = τ_i ⊙ [|τ_i| ≥ t_i]
    γ      = sign(Σ_i τ̂_i);  γ[γ = 0] = sign(Σ_coords γ)  (one majority sign for exact zero sums)
    τ_m    = Σ_i λ_i τ̂_i [sign τ̂_i = γ] / max(#{i: sign τ̂_i = γ, τ̂_i ≠ 0}, 1)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "dare_mask",
    "disjoint_mean",
    "elect_sign",
    "kth_smallest",
    "pcb_beta",
    "pcb_clamp",
    "pcb_merge_rows",
    "pcb_normalized",
    "pcb_rank_indices",
    "pcb_scale",
    "ties_rank",
    "ties_trim",
]

INTER_VARIANTS = ("sum", "normalized", "pairwise")


_NUMPY_DTYPES = (torch.float32, torch.float64)


def _numpy_ufunc_(fn: np.ufunc, fallback: str, x: Tensor) -> Tensor:
    """Apply ``fn`` in place. CPU float32/float64 tensors go through numpy's ufunc on a zero-copy
    view: numpy's SIMD ``tanh``/``exp`` are 2-7x faster than torch's CPU kernels (measured, 1
    thread: float32 tanh 0.36 vs 2.6 ns, exp 0.45 vs 0.82 ns per element). Other devices and
    dtypes, and tensors that need gradients, use torch. Overflow gives ``inf`` as in torch."""
    if x.device.type == "cpu" and x.dtype in _NUMPY_DTYPES and not x.requires_grad:
        v = x.numpy()
        with np.errstate(over="ignore", under="ignore"):
            fn(v, out=v)
        return x
    return getattr(x, fallback)()  # type: ignore[no-any-return]


def tanh_(x: Tensor) -> Tensor:
    """In-place ``tanh`` (the one every PCB code path uses, so in-memory and streamed β agree)."""
    return _numpy_ufunc_(np.tanh, "tanh_", x)


def exp_(x: Tensor) -> Tensor:
    """In-place ``exp`` (the one every PCB code path uses, so in-memory and streamed β agree)."""
    return _numpy_ufunc_(np.exp, "exp_", x)


def colsum(x: Tensor, out: Tensor | None = None) -> Tensor:
    """``Σ_i x_i`` over the rows of ``(n, m)`` ``x``, added in row order (``x_0 + x_1 + …``): one
    definition for every PCB code path, so chunked and whole-matrix sums agree bit for bit (and
    ~3x faster on the CPU than ``torch.sum(dim=0)``'s reduction kernel for few rows)."""
    res = torch.empty(x.shape[1:], dtype=x.dtype, device=x.device) if out is None else out
    if x.shape[0] == 0:
        return res.zero_()
    if x.shape[0] == 1:
        return res.copy_(x[0])
    torch.add(x[0], x[1], out=res)
    for i in range(2, x.shape[0]):
        res.add_(x[i])
    return res


def kth_smallest(x: Tensor, index: int) -> Tensor:
    """The ``index``-th smallest entry (0-based) of every row of ``x`` (shape ``(n,)``)."""
    return torch.kthvalue(x, index + 1, dim=1).values


# --------------------------------------------------------------------------------------------- PCB


def pcb_rank_indices(d: int, ratio: float, outlier: float) -> tuple[int, int, int]:
    """0-based sorted-order indices of the official ``clamp`` helper for a row of length ``d``.

    Returns ``(lo, hi, q)``: ``int(d·o)``, ``int(d·(1−o)−1)`` for the outlier clamp and
    ``int(d·(1−r))`` for the drop threshold, with Python float arithmetic exactly as the official
    ``clamp(x, min_ratio, max_ratio)`` (``min_ratio=1−r`` is formed first, then multiplied).
    """
    lo = int(d * outlier)
    hi = int(d * (1 - outlier) - 1)
    q = int(d * (1 - ratio))
    hi = max(hi, lo)  # tiny rows: official code would index a smaller hi; keep the clip valid
    return lo, min(hi, d - 1), min(q, d - 1)


def pcb_clamp(tv: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Outlier clamp: ``a = clip(|τ|, lo, hi)`` per row and ``ĉ = sign(τ)·a``. Returns ``(a, ĉ)``."""
    a = torch.clamp(tv.abs(), lo.unsqueeze(1), hi.unsqueeze(1))
    return a, torch.sign(tv) * a


def pcb_normalized(a: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Min–max normalisation of the clamped magnitudes; rows with ``hi == lo`` give 0 (not NaN)."""
    span = (hi - lo).unsqueeze(1)
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (a - lo.unsqueeze(1)) / safe, torch.zeros_like(a))


def pcb_beta(tv: Tensor, a: Tensor, lo: Tensor, hi: Tensor, *, inter: str) -> Tensor:
    """Balancing scores ``β = exp(n·ñ²) ⊙ inter`` for the chosen inter-balancing variant."""
    n = tv.shape[0]
    nrm = pcb_normalized(a, lo, hi)
    intra = exp_(n * nrm.square())
    if inter == "sum":
        cross = tanh_(tv * colsum(tv))
    elif inter == "normalized":
        signed = torch.sign(tv) * nrm
        cross = tanh_(tv * colsum(signed))
    elif inter == "pairwise":
        signed = torch.sign(tv) * nrm
        cross = torch.stack([tanh_(signed[i] * signed).sum(dim=0) for i in range(n)])
    else:
        raise ValueError(f"inter must be one of {INTER_VARIANTS}, got {inter!r}")
    return intra * cross


def pcb_scale(beta: Tensor, q: Tensor, top: Tensor) -> Tensor:
    """Drop-and-rescale ``s = (clip(β, q, M) − q)/(M − q)``; rows with ``M == q`` give 0."""
    span = (top - q).unsqueeze(1)
    safe = torch.where(span > 0, span, torch.ones_like(span))
    clipped = torch.clamp(beta, q.unsqueeze(1), top.unsqueeze(1))
    return torch.where(span > 0, (clipped - q.unsqueeze(1)) / safe, torch.zeros_like(beta))


def pcb_merge_rows(clamped: Tensor, scale: Tensor, lambdas: Tensor) -> Tensor:
    """``τ_m = Σ_i λ_i ĉ_i s_i / max(Σ_i s_i, 1e-12)`` (the official weighted average)."""
    num = colsum(clamped * lambdas.to(clamped.dtype).unsqueeze(1) * scale)
    return num / torch.clamp(colsum(scale), min=1e-12)


# -------------------------------------------------------------------------------------------- TIES


def ties_rank(d: int, density: float) -> int:
    """0-based index of the TIES threshold: ``k − 1`` with ``k = d − int(d·K)``, or -1 (keep all).

    ``density = 1`` gives ``k = 0``, which the official ``kthvalue`` rejects; here it keeps every
    coordinate (threshold −∞), the obvious meaning of keeping 100%.
    """
    return d - int(d * density) - 1


def ties_trim(tv: Tensor, threshold: Tensor) -> Tensor:
    """``τ̂ = τ ⊙ [|τ| ≥ t]`` per row (ties at the threshold are kept, as in the official code)."""
    return tv * (tv.abs() >= threshold.unsqueeze(1))


def elect_sign(trimmed: Tensor, majority: Tensor | float | None = None) -> Tensor:
    """``γ = sign(Σ_i τ̂_i)``; exact zeros get ``majority`` (default: ``sign(Σ γ)`` over this block).

    In global scope the majority sign must be the one of the whole model; the streaming code
    computes it in a separate pass and passes it in.
    """
    gamma = torch.sign(trimmed.sum(dim=0))
    if majority is None:
        majority = torch.sign(gamma.sum())
    return torch.where(gamma == 0, torch.as_tensor(majority, dtype=gamma.dtype), gamma)


def disjoint_mean(trimmed: Tensor, gamma: Tensor, lambdas: Tensor) -> Tensor:
    """Disjoint mean of the entries agreeing with ``γ``, each weighted by its task's ``λ_i``."""
    agree = torch.where(gamma.unsqueeze(0) > 0, trimmed > 0, trimmed < 0)
    count = agree.sum(dim=0).to(trimmed.dtype)
    weighted = (trimmed * agree * lambdas.to(trimmed.dtype).unsqueeze(1)).sum(dim=0)
    return weighted / torch.clamp(count, min=1)


# -------------------------------------------------------------------------------------------- DARE


def _key_seed(seed: int, key: str, task: int) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{task}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


#: the DARE uniforms are drawn in pieces of this many values (a multiple of 16), so a streamed
#: merge can draw them chunk by chunk with bounded memory and get exactly the same mask
DARE_PIECE = 1 << 16


def dare_generator(seed: int, key: str, task: int) -> torch.Generator:
    """The generator of one tensor's DARE mask for one task, seeded by (seed, key, task)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(_key_seed(seed, key, task))
    return gen


def dare_keep(gen: torch.Generator, count: int, p: float) -> Tensor:
    """The next ``count`` keep decisions of ``gen``: ``U >= p`` for float64 uniforms U, drawn in
    pieces of :data:`DARE_PIECE` (``count`` must be a multiple of it unless it ends the tensor)."""
    parts = []
    for a in range(0, count, DARE_PIECE):
        u = torch.rand(min(DARE_PIECE, count - a), generator=gen, dtype=torch.float64)
        parts.append(u >= p)
    return torch.cat(parts) if len(parts) != 1 else parts[0]


def dare_mask(shape: Sequence[int], p: float, *, seed: int, key: str, task: int) -> Tensor:
    """DARE keep-mask for one tensor of one task: ``Bernoulli(1 − p)``, seeded by (seed, key, task).

    Seeding per tensor key makes the result independent of traversal order and of whether the
    model is merged from memory or streamed from files. The uniforms are drawn in pieces of
    :data:`DARE_PIECE` values (for torch's CPU generator this is the same stream as one call).
    """
    numel = 1
    for v in shape:
        numel *= v
    if not numel:
        return torch.zeros(tuple(shape), dtype=torch.bool)
    return dare_keep(dare_generator(seed, key, task), numel, p).reshape(tuple(shape))

"""One merge loop for every method, scope and storage.

A method is a small object with two hooks: ``stats`` gathers the whole-row statistics it needs
(order statistics through a :class:`~pcb_merge._select.Selector`, or sums), and ``delta`` turns
one block of task vectors into the merged update using those statistics. ``scope="tensor"``
calls both on each tensor alone; ``scope="global"`` calls ``stats`` once over all float tensors
(the official flattened model) and then ``delta`` tensor by tensor. When streaming from files,
the column-local methods (PCB, TIES) see each tensor as cache-sized column chunks in both the
statistics passes and the merge (:func:`chunk_blocks`): every step is per column given the
statistics, so the chunks give the same bits as whole tensors.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pcb_merge import functional as F
from pcb_merge._select import InMemorySelector, RadixSelector, Selector
from pcb_merge.checkpoints import Checkpoint


@dataclass(frozen=True)
class Block:
    """One tensor's base values ``(m,)`` and task vectors ``(n, m)`` in the compute dtype."""

    key: str
    shape: tuple[int, ...]
    base: Tensor
    tv: Tensor


Stats = dict[str, Any]
BlockSource = Callable[[], Iterable[Block]]
Sampler = Callable[[], Tensor]
"""Returns the task vectors ``(n, s)`` at seeded random columns of the scope (see
:func:`sample_size`), read without a full pass; used only to bracket order statistics."""

_SAMPLE_SEED = 0x5EED


def sample_size(d: int) -> int:
    """Columns sampled to bracket order statistics: about d/128, within [2^16, 2^22], at most d.
    A bracket then holds ~12·sqrt(p(1-p))·d/sqrt(s) values, a few MB at most."""
    return min(d, max(1 << 16, min(1 << 22, d // 128)))


def sample_positions(d: int) -> Tensor:
    """Seeded increasing positions in ``[0, d)``, the same for every run: one uniformly random
    position in each of ``s = sample_size(d)`` equal strata (a stratified sample: no sort, and the
    count of sampled values below any threshold varies no more than a simple random sample's, so
    the binomial bracket stays conservative)."""
    if d <= 0:
        return torch.empty(0, dtype=torch.int64)
    s = sample_size(d)
    g = torch.Generator().manual_seed(_SAMPLE_SEED)
    i = torch.arange(s + 1, dtype=torch.int64)
    edges = (i * d) // s  # stratum k is [edges[k], edges[k + 1]), never empty (s <= d)
    width = (edges[1:] - edges[:-1]).to(torch.float64)
    offset = (torch.rand(s, generator=g, dtype=torch.float64) * width).to(torch.int64)
    return edges[:-1] + torch.minimum(offset, edges[1:] - edges[:-1] - 1)


def block_sampler(block: Block) -> Sampler:
    """A :data:`Sampler` over one in-memory block (tensor scope)."""

    def sample() -> Tensor:
        return block.tv[:, sample_positions(block.tv.shape[1])]

    return sample


class MethodImpl:
    name = ""

    def stats(
        self,
        blocks: BlockSource,
        d: int,
        n: int,
        selector: Selector,
        sample: Sampler | None = None,
    ) -> Stats:
        return {}

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        raise NotImplementedError

    def delta_(self, block: Block, stats: Stats, lambdas: Tensor, out: Tensor) -> Tensor:
        """:meth:`delta` allowed to overwrite ``block`` and to return ``out`` (a reused flat buffer
        of the block's size); the streaming loop uses it for blocks it no longer needs."""
        return self.delta(block, stats, lambdas)

    def describe(self) -> dict[str, str]:
        return {"merge_method": self.name}


class TaskArithmetic(MethodImpl):
    name = "task_arithmetic"

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        """``Σ_i λ_i τ_i``, the tasks added in order (:func:`pcb_merge.functional.colsum`)."""
        return F.colsum(block.tv * lambdas.to(block.tv.dtype).unsqueeze(1))

    def delta_(self, block: Block, stats: Stats, lambdas: Tensor, out: Tensor) -> Tensor:
        # the same two operations as ``delta`` (scale, sum over tasks), in place: same bits
        return F.colsum(_scale_rows_(block.tv, lambdas), out=out)


class Dare(MethodImpl):
    name = "dare"

    def __init__(self, p: float, rescale: bool, seed: int) -> None:
        self.p, self.rescale, self.seed = p, rescale, seed

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        n = block.tv.shape[0]
        masks = torch.stack(
            [
                F.dare_mask(block.shape, self.p, seed=self.seed, key=block.key, task=i).reshape(-1)
                for i in range(n)
            ]
        )
        kept = block.tv * masks
        if self.rescale and self.p > 0:
            kept = kept / (1.0 - self.p)
        return F.colsum(kept * lambdas.to(kept.dtype).unsqueeze(1))

    def delta_(self, block: Block, stats: Stats, lambdas: Tensor, out: Tensor) -> Tensor:
        """:meth:`delta` on column pieces of :data:`~pcb_merge.functional.DARE_PIECE` (the masks
        are drawn piece by piece from the same per-task generators): the same bits with memory
        bounded by a piece instead of a float64 uniform and a mask per task of the whole tensor."""
        tv = block.tv
        n, m = tv.shape
        gens = [F.dare_generator(self.seed, block.key, i) for i in range(n)]
        lam = lambdas.to(tv.dtype).unsqueeze(1)
        piece = F.DARE_PIECE
        for j in range(0, m, piece):
            e = min(m, j + piece)
            masks = torch.stack([F.dare_keep(g, e - j, self.p) for g in gens])
            kept = tv[:, j:e] * masks
            if self.rescale and self.p > 0:
                kept = kept / (1.0 - self.p)
            F.colsum(kept * lam, out=out[j:e])
        return out

    def describe(self) -> dict[str, str]:
        return {
            "merge_method": self.name,
            "p": repr(self.p),
            "rescale": str(self.rescale),
            "seed": str(self.seed),
        }


class Ties(MethodImpl):
    name = "ties"

    def __init__(self, density: float) -> None:
        self.density = density

    def stats(
        self,
        blocks: BlockSource,
        d: int,
        n: int,
        selector: Selector,
        sample: Sampler | None = None,
    ) -> Stats:
        rank = F.ties_rank(d, self.density)
        if rank < 0:
            thr = torch.full((n,), float("-inf"), dtype=torch.float64)
        else:
            hint = sample().abs() if sample is not None else None
            vals, _ = selector.select(
                lambda: (b.tv.abs() for b in blocks()), [rank], n, sample=hint, d=d, need_top=False
            )
            thr = vals[:, 0]
        total = torch.zeros((), dtype=torch.float64)
        for b in blocks():  # majority sign over the whole scope, for coordinates whose sum is 0
            t = thr.to(b.tv.dtype)
            m = b.tv.shape[1]
            for j in range(0, m, _COLS):  # column chunks: integer-valued float64 sums, exact
                trimmed = F.ties_trim(b.tv[:, j : j + _COLS], t)
                total += torch.sign(trimmed.sum(dim=0)).sum(dtype=torch.float64)
        return {"threshold": thr, "majority": float(torch.sign(total))}

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        trimmed = F.ties_trim(block.tv, stats["threshold"].to(block.tv.dtype))
        gamma = F.elect_sign(trimmed, stats["majority"])
        return F.disjoint_mean(trimmed, gamma, lambdas)

    def delta_(self, block: Block, stats: Stats, lambdas: Tensor, out: Tensor) -> Tensor:
        # every step of ``delta`` is per column: the same functions on cache-sized column chunks
        thr = stats["threshold"].to(block.tv.dtype)
        for j in range(0, block.tv.shape[1], _COLS):
            trimmed = F.ties_trim(block.tv[:, j : j + _COLS], thr)
            gamma = F.elect_sign(trimmed, stats["majority"])
            out[j : j + trimmed.shape[1]].copy_(F.disjoint_mean(trimmed, gamma, lambdas))
        return out

    def describe(self) -> dict[str, str]:
        return {"merge_method": self.name, "density": repr(self.density)}


_COLS = 1 << 18  # columns per chunk of the fused PCB kernels (temporaries stay in L2/L3; fewer
# chunks amortise the per-op dispatch cost, measured best at 2^18 on a 1 MB-L2 EPYC)


_Bounds = tuple[Tensor, Tensor, Tensor, list[int], bool]


def _scale_rows_(x: Tensor, lambdas: Tensor) -> Tensor:
    """``x *= λ[:, None]`` in place, skipping rows with ``λ_i = 1`` (``x·1 == x`` exactly)."""
    for i, v in enumerate(lambdas.to(x.dtype).tolist()):
        if v != 1.0:
            x[i].mul_(v)
    return x


def _clamp_(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``x.clamp_(lo, hi)`` for per-row ``(n, 1)`` bounds, row by row with scalar bounds: the same
    bits (signed zeros and NaN included) without the broadcasting path, which is ~6x slower."""
    for i, (a, b) in enumerate(zip(lo[:, 0].tolist(), hi[:, 0].tolist())):
        x[i].clamp_(a, b)
    return x


class _Buffer:
    """One growable flat buffer, reused for per-block temporaries of the streaming passes."""

    def __init__(self) -> None:
        self._data: Tensor | None = None

    def get(self, shape: tuple[int, int], dtype: torch.dtype) -> Tensor:
        size = shape[0] * shape[1]
        if self._data is None or self._data.dtype != dtype or self._data.numel() < size:
            self._data = None
            self._data = torch.empty(size, dtype=dtype)
        return self._data[:size].view(shape)


class _Pool:
    """Named reusable buffers (one per role) so a streaming pass allocates, and page-faults, its
    working memory once instead of once per tensor."""

    def __init__(self) -> None:
        self._bufs: dict[str, _Buffer] = {}

    def get(self, name: str, shape: tuple[int, int], dtype: torch.dtype) -> Tensor:
        return self._bufs.setdefault(name, _Buffer()).get(shape, dtype)

    def flat(self, name: str, numel: int, dtype: torch.dtype) -> Tensor:
        return self.get(name, (1, numel), dtype)[0]


class Pcb(MethodImpl):
    """PCB with fused, chunked kernels: the same operations in the same order as
    :func:`pcb_merge.functional.pcb_beta` / ``pcb_scale`` / ``pcb_merge_rows``, computed in place on
    column chunks, so no whole-tensor temporary other than the result is allocated."""

    name = "pcb"

    def __init__(self, ratio: float, outlier: float, inter: str) -> None:
        self.ratio, self.outlier, self.inter = ratio, outlier, inter
        self._scratch = _Pool()  # chunk temporaries, reused across calls (page-faulted once)
        self._derived: dict[tuple[Any, ...], tuple[Tensor, Tensor, _Bounds]] = {}

    def stats(
        self,
        blocks: BlockSource,
        d: int,
        n: int,
        selector: Selector,
        sample: Sampler | None = None,
    ) -> Stats:
        lo_i, hi_i, q_i = F.pcb_rank_indices(d, self.ratio, self.outlier)
        tv_s = sample() if sample is not None else None
        # A selector that consumes each block before asking for the next (the radix one) is fed
        # column chunks of |τ| and β computed into small reused buffers, which stay in cache: no
        # whole-block score buffer. The in-memory selector keeps every block, so it gets copies.
        reuse = not isinstance(selector, InMemorySelector)
        buf = _Buffer()

        def mags() -> Iterator[Tensor]:
            for b in blocks():
                if not reuse or not b.tv.shape[1]:
                    yield b.tv.abs()
                    continue
                m = b.tv.shape[1]
                for j in range(0, m, _COLS):
                    e = min(m, j + _COLS)
                    yield torch.abs(b.tv[:, j:e], out=buf.get((n, e - j), b.tv.dtype))
                del b

        hint = tv_s.abs() if tv_s is not None else None
        vals, _ = selector.select(mags, [lo_i, hi_i], n, sample=hint, d=d, need_top=False)
        lo, hi = vals[:, 0], vals[:, 1]
        # β of the sampled columns (β is per column, so these are samples of the full β)
        hint = self._beta(tv_s, lo, hi) if tv_s is not None else None
        del tv_s

        def betas() -> Iterator[Tensor]:
            for b in blocks():
                if not reuse or not b.tv.shape[1]:
                    yield self._beta(b.tv, lo, hi)
                    continue
                for _, _, beta, _, _ in self._chunks(b.tv, lo, hi):
                    yield beta
                del b

        qv, top = selector.select(betas, [q_i], n, sample=hint, d=d)
        del hint
        return {"lo": lo, "hi": hi, "q": qv[:, 0], "max": top}

    def _bounds(self, stats: Stats, key: str, dt: torch.dtype) -> _Bounds:
        """``(low (n,1), high (n,1), safe span (n,1), degenerate rows, every low is +0)`` for the
        clamp to ``[stats[lo], stats[hi]]`` (``key="lo"``) or to ``[q, max]`` (``key="q"``), in
        ``dt``; cached per statistics object, so a chunk does not redo these small-tensor ops."""
        lo_t, hi_t = (stats["lo"], stats["hi"]) if key == "lo" else (stats["q"], stats["max"])
        ck = (key, id(lo_t), id(hi_t), dt)
        hit = self._derived.get(ck)
        if hit is not None and hit[0] is lo_t and hit[1] is hi_t:
            return hit[2]
        low, high = lo_t.to(dt).unsqueeze(1), hi_t.to(dt).unsqueeze(1)
        span = high - low
        safe = torch.where(span > 0, span, torch.ones_like(span))
        flat = [i for i in range(low.shape[0]) if not bool(span[i, 0] > 0)]
        val = (low, high, safe, flat, bool((low == 0).all()))
        if len(self._derived) > 8:
            self._derived.clear()
        self._derived[ck] = (lo_t, hi_t, val)
        return val

    def _chunks(
        self, tv: Tensor, lo: Tensor, hi: Tensor
    ) -> Iterator[tuple[int, int, Tensor, Tensor, Tensor]]:
        """Yield ``(start, end, β, t, a)`` per column chunk: the balancing scores, the task
        vectors and their clamped magnitudes ``a = clip(|t|, lo, hi)`` (buffers reused)."""
        m = tv.shape[1]
        for j in range(0, m, _COLS):
            e = min(m, j + _COLS)
            beta, a = self._chunk_beta(tv[:, j:e], lo, hi)
            yield j, e, beta, tv[:, j:e], a

    def _chunk_beta(self, t: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """``(β, a)`` of one column chunk ``t`` (at most ``_COLS`` wide) in reused buffers."""
        n, k = t.shape
        dt = t.dtype
        lo_c, hi_c, safe, flat, zero_lo = self._bounds({"lo": lo, "hi": hi}, "lo", dt)
        w = max(k, _COLS)
        a = self._scratch.get("a", (n, w), dt)[:, :k]
        b = self._scratch.get("b", (n, w), dt)[:, :k]
        x = self._scratch.get("x", (n, w), dt)[:, :k]
        col = self._scratch.flat("col", w, dt)[:k]
        _clamp_(torch.abs(t, out=a), lo_c, hi_c)
        if zero_lo:  # a − 0 == a exactly (a >= +0): skip the subtraction
            torch.div(a, safe, out=b)  # ñ (pcb_normalized)
        else:
            torch.sub(a, lo_c, out=b).div_(safe)
        for i in flat:
            b[i].zero_()
        if self.inter == "sum":
            F.colsum(t, out=col)
            F.tanh_(torch.mul(t, col, out=x))
        elif self.inter == "normalized":
            torch.sign(t, out=x).mul_(b)
            F.colsum(x, out=col)
            F.tanh_(torch.mul(t, col, out=x))
        elif self.inter == "pairwise":
            signed = torch.sign(t) * b
            for i in range(n):
                torch.sum(F.tanh_(signed[i] * signed), dim=0, out=x[i])
            del signed
        else:
            raise ValueError(f"inter must be one of {F.INTER_VARIANTS}, got {self.inter!r}")
        F.exp_(b.square_().mul_(n))  # intra = exp(n·ñ²)
        b.mul_(x)  # β = intra ⊙ inter
        return b, a

    def _beta(self, tv: Tensor, lo: Tensor, hi: Tensor, out: Tensor | None = None) -> Tensor:
        res = torch.empty_like(tv) if out is None else out
        for j, e, beta, _, _ in self._chunks(tv, lo, hi):
            res[:, j:e].copy_(beta)
        return res

    def _scale_(self, beta: Tensor, stats: Stats) -> Tensor:
        """``pcb_scale`` in place on a chunk of β."""
        q, top, safe, flat, _ = self._bounds(stats, "q", beta.dtype)
        _clamp_(beta, q, top).sub_(q).div_(safe)
        for i in flat:
            beta[i].zero_()
        return beta

    def parts(self, block: Block, stats: Stats) -> tuple[Tensor, Tensor]:
        """``(ĉ, s)`` of one block: clamped task vectors and drop-and-rescale weights."""
        dt = block.tv.dtype
        lo, hi = stats["lo"].to(dt), stats["hi"].to(dt)
        _, clamped = F.pcb_clamp(block.tv, lo, hi)
        scale = self._scale_(self._beta(block.tv, stats["lo"], stats["hi"]), stats)
        return clamped, scale

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        """``pcb_merge_rows(ĉ, s, λ)`` chunk by chunk (same operations, same order)."""
        out = torch.empty(block.tv.shape[1], dtype=block.tv.dtype)
        return self.delta_(block, stats, lambdas, out)

    def delta_(self, block: Block, stats: Stats, lambdas: Tensor, out: Tensor) -> Tensor:
        tv = block.tv
        n, m = tv.shape
        dt = tv.dtype
        w = max(min(m, _COLS), 1)
        sg_buf = self._scratch.get("sg", (n, w), dt)
        den_buf = self._scratch.flat("den", w, dt)
        for j in range(0, m, _COLS):
            e = min(m, j + _COLS)
            k = e - j
            t = tv[:, j:e]
            beta, c = self._chunk_beta(t, stats["lo"], stats["hi"])
            scale = self._scale_(beta, stats)
            sg, den = sg_buf[:, :k], den_buf[:k]
            c.mul_(torch.sign(t, out=sg))  # ĉ = sign(τ)·a (pcb_clamp)
            _scale_rows_(c, lambdas).mul_(scale)
            F.colsum(c, out=out[j:e])
            F.colsum(scale, out=den)
            out[j:e].div_(den.clamp_(min=1e-12))
        return out

    def describe(self) -> dict[str, str]:
        return {
            "merge_method": self.name,
            "ratio": repr(self.ratio),
            "outlier": repr(self.outlier),
            "inter": self.inter,
        }


# ------------------------------------------------------------------------------------------- loop


def only(block: Block) -> BlockSource:
    """A block source yielding just ``block`` (tensor scope)."""

    def source() -> list[Block]:
        return [block]

    return source


def check_compatible(base: Checkpoint, models: Sequence[Checkpoint]) -> list[str]:
    """Same keys, shapes and dtypes everywhere; returns the base's key order."""
    keys = base.keys()
    ref = set(keys)
    for m in models:
        other = set(m.keys())
        if other != ref:
            diff = sorted(ref ^ other)
            raise ValueError(
                f"checkpoint {m.name!r} does not have the base's tensor names; symmetric difference "
                f"({len(diff)}): {diff[:20]}"
            )
    bad_shape, bad_dtype = [], []
    for key in keys:
        shape, dtype = base.spec(key)
        for m in models:
            s, t = m.spec(key)
            if s != shape:
                bad_shape.append(f"{key}: {shape} in base vs {s} in {m.name}")
            elif t != dtype:
                bad_dtype.append(f"{key}: {dtype} in base vs {t} in {m.name}")
    if bad_shape:
        raise ValueError(
            f"tensor shapes differ across checkpoints ({len(bad_shape)}): {bad_shape[:10]}"
        )
    if bad_dtype:
        raise ValueError(
            f"tensor dtypes differ across checkpoints ({len(bad_dtype)}): {bad_dtype[:10]}"
        )
    return keys


_MINMAX_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _finite(t: Tensor, key: str, who: str) -> Tensor:
    if t.dtype in _MINMAX_DTYPES and t.numel():
        # one reduction without a boolean temporary (``isfinite(t).all()`` is ~20x slower on
        # bfloat16): min and max propagate NaN and are ±Inf when any entry is
        lo, hi = torch.aminmax(t)
        ok = math.isfinite(float(lo)) and math.isfinite(float(hi))
    else:
        ok = bool(torch.isfinite(t).all())
    if not ok:
        raise ValueError(f"tensor {key!r} of {who} contains NaN or Inf")
    return t


def _read(ck: Checkpoint, key: str, pool: _Pool | None, slot: str = "raw") -> Tensor:
    """``ck.load(key)``; with a pool, a zero-copy mapped view (pair it with :func:`_release`) or a
    read into the pool's ``slot`` buffer when the checkpoint supports either."""
    view = getattr(ck, "view", None)
    if pool is not None and view is not None:
        t = view(key)
        if t is not None:
            return t  # type: ignore[no-any-return]
    load_into = getattr(ck, "load_into", None)
    if pool is None or load_into is None:
        return ck.load(key)
    shape, dtype = ck.spec(key)
    nbytes = _numel(shape) * torch.empty((), dtype=dtype).element_size()
    return load_into(key, pool.flat(slot, nbytes, torch.uint8))  # type: ignore[no-any-return]


def _release(ck: Checkpoint, key: str) -> None:
    release = getattr(ck, "release", None)
    if release is not None:
        release(key)


_FUSED_COLS = 1 << 17  # columns per chunk of the fused task-arithmetic loop (fits in L2/L3)


def _cast_chunk(raws: Sequence[Tensor], j: int, e: int, b: Tensor, tv: Tensor) -> None:
    """Columns ``j:e`` of the flat stored tensors ``raws`` (base first) into the compute-dtype
    buffers: ``b = base``, ``tv[i] = model_i − b`` (cast, then subtract, as :func:`load_block`)."""
    b.copy_(raws[0][j:e])
    for i in range(tv.shape[0]):
        tv[i].copy_(raws[i + 1][j:e])
        tv[i].sub_(b)


def _task_arithmetic_fused(
    key: str,
    base: Checkpoint,
    models: Sequence[Checkpoint],
    lambdas: Tensor,
    dtype: torch.dtype,
    out_dtype: torch.dtype,
    pool: _Pool,
) -> Tensor:
    """Task arithmetic of one tensor, column chunk by column chunk, into a reused output buffer.

    The same operations as ``load_block`` + ``TaskArithmetic.delta`` + ``base + delta`` (cast,
    subtract, scale, sum over tasks, add the base, cast out), each on a cache-sized chunk, so the
    compute-dtype temporaries never travel to main memory: bit-identical results. The NaN/Inf
    check runs on the output: with λ > 0 a non-finite input always gives a non-finite output
    (``x − ∞``, ``λ·∞``, ``∞ − ∞``, NaN all propagate), and only then are the inputs checked, so
    the same error names the same tensor and checkpoint.
    """
    raws = [_read(ck, key, pool, f"raw{i}").reshape(-1) for i, ck in enumerate([base, *models])]
    m = raws[0].numel()
    n = len(models)
    w = max(min(m, _FUSED_COLS), 1)
    b_buf = pool.flat("fb", w, dtype)
    tv_buf = pool.get("ftv", (n, w), dtype)
    d_buf = pool.flat("fd", w, dtype)
    out = pool.flat("fout", m, out_dtype)
    lam = lambdas.to(dtype)
    for j in range(0, m, _FUSED_COLS):
        e = min(m, j + _FUSED_COLS)
        k = e - j
        b, tv, d = b_buf[:k], tv_buf[:, :k], d_buf[:k]
        _cast_chunk(raws, j, e, b, tv)
        F.colsum(_scale_rows_(tv, lam), out=d)
        out[j:e].copy_(d.add_(b))
    if m and out.dtype in _MINMAX_DTYPES:
        lo, hi = torch.aminmax(out)
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            for ck, raw in zip([base, *models], raws):
                _finite(raw, key, ck.name)  # raises for the first non-finite input
    else:
        for ck, raw in zip([base, *models], raws):
            _finite(raw, key, ck.name)
    del raws
    for ck in [base, *models]:
        _release(ck, key)
    return out


def chunk_blocks(
    key: str,
    base: Checkpoint,
    models: Sequence[Checkpoint],
    dtype: torch.dtype,
    pool: _Pool,
    *,
    check: bool = True,
) -> Iterator[Block]:
    """One tensor as column chunks of at most ``_COLS`` entries: each chunk's base and task
    vectors are cast and subtracted from the mapped files into small reused buffers, so the
    compute-dtype copies stay in cache (the same per-entry operations as :func:`load_block`,
    hence the same bits). A chunk is valid until the next one is produced."""
    sources = [base, *models]
    raws = [_read(ck, key, pool, f"raw{i}").reshape(-1) for i, ck in enumerate(sources)]
    # NaN/Inf: checked on each chunk's task vectors, which are non-finite whenever an input is
    # (x − ∞, ∞ − x, ∞ − ∞ and NaN all propagate); then the inputs are scanned, so the error
    # names the same tensor and checkpoint as the whole-tensor check (finite inputs whose
    # difference overflows pass, as there).
    check = check and raws[0].dtype in _MINMAX_DTYPES and bool(models)
    m = raws[0].numel()
    n = len(models)
    w = max(min(m, _COLS), 1)
    b_buf = pool.flat("cbase", w, dtype)
    tv_buf = pool.get("ctv", (n, w), dtype)
    try:
        for j in range(0, m, _COLS):
            e = min(m, j + _COLS)
            k = e - j
            b, tv = b_buf[:k], tv_buf[:, :k]
            _cast_chunk(raws, j, e, b, tv)
            if check:
                lo, hi = torch.aminmax(tv)
                if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
                    for ck, raw in zip(sources, raws):
                        _finite(raw, key, ck.name)
                    check = False
            yield Block(key, (k,), b, tv)
    finally:  # also when the consumer stops early (a bracket that missed)
        del raws
        for ck in sources:
            _release(ck, key)


def load_block(
    key: str,
    base: Checkpoint,
    models: Sequence[Checkpoint],
    dtype: torch.dtype,
    *,
    check: bool = True,
    pool: _Pool | None = None,
) -> Block:
    """Load one tensor's base and task vectors; each source is cast straight into its row.

    ``check=False`` skips the NaN/Inf check (for re-reads of a tensor that was already checked).
    With a ``pool`` the block lives in the pool's reused buffers (valid until the next load).
    """
    raw = _read(base, key, pool)
    if check:
        _finite(raw, key, base.name)
    shape = tuple(raw.shape)
    if pool is None:
        b = raw.to(dtype).reshape(-1)
    else:
        b = pool.flat("base", raw.numel(), dtype)
        b.copy_(raw.reshape(-1))
        _release(base, key)
    del raw
    tv = (
        torch.empty((len(models), b.numel()), dtype=dtype)
        if pool is None
        else pool.get("tv", (len(models), b.numel()), dtype)
    )
    for i, m in enumerate(models):
        raw = _read(m, key, pool)
        if check:
            _finite(raw, key, m.name)
        tv[i].copy_(raw.reshape(-1))
        tv[i].sub_(b)
        del raw
        if pool is not None:
            _release(m, key)
    return Block(key, shape, b, tv)


def _progress(it: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return it
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return it
    return tqdm(it, total=total, desc=desc, unit="tensor", leave=False)  # type: ignore[no-any-return]


def run(
    impl: MethodImpl,
    base: Checkpoint,
    models: Sequence[Checkpoint],
    *,
    scope: str,
    lambdas: Tensor,
    compute_dtype: torch.dtype,
    out_dtype: torch.dtype | None,
    emit: Callable[[str, Tensor], None],
    selector: Selector | None = None,
    progress: bool = False,
    keys: Sequence[str] | None = None,
    reuse: bool = False,
) -> Stats:
    """Merge and hand every output tensor to ``emit`` in base key order. Returns global stats.

    ``reuse=True`` (for an ``emit`` that consumes each tensor before returning, like a file writer)
    keeps blocks and outputs in reused buffers: the emitted tensor is only valid during the call.
    """
    pool = _Pool() if reuse else None
    keys = list(keys) if keys is not None else check_compatible(base, models)
    float_keys = [k for k in keys if base.spec(k)[1].is_floating_point]
    n = len(models)
    stats: Stats = {}
    if scope == "global" and float_keys:
        d = sum(_numel(base.spec(k)[0]) for k in float_keys)
        sel = selector or InMemorySelector()
        # a selector that holds every block (in memory) must not see them share buffers
        pass_pool = None if isinstance(sel, InMemorySelector) else pool
        # column-local methods stream cache-sized chunks of each tensor (global statistics
        # only see columns; the merge of a column needs only that column and the statistics)
        chunk_pool = pass_pool if isinstance(impl, (Pcb, Ties)) else None
        counter = {"pass": 0}
        checked: set[str] = set()
        cache: dict[str, Block] = {}  # the last block of a pass is the first of the next one

        def blocks() -> Iterator[Block]:
            counter["pass"] += 1
            order = float_keys if counter["pass"] % 2 else float_keys[::-1]
            for k in _progress(order, len(order), f"statistics pass {counter['pass']}", progress):
                if chunk_pool is not None:
                    yield from chunk_blocks(
                        k, base, models, compute_dtype, chunk_pool, check=k not in checked
                    )
                    checked.add(k)
                    continue
                block = cache.pop(k, None)
                cache.clear()
                if block is None:
                    block = load_block(
                        k, base, models, compute_dtype, check=k not in checked, pool=pass_pool
                    )
                    checked.add(k)
                cache[k] = block
                yield block
                del block

        def sample() -> Tensor:
            return _sample_files(float_keys, d, base, models, compute_dtype, pass_pool)

        # the sample only helps the float32 radix route (one bracketed pass per statistic)
        use_sample = compute_dtype == torch.float32 and not isinstance(sel, InMemorySelector)
        stats = impl.stats(blocks, d, n, sel, sample=sample if use_sample else None)
        _warn_degenerate(impl, stats)
    else:
        checked, cache = set(), {}
    for key in _progress(keys, len(keys), "merging", progress):
        shape, dtype = base.spec(key)
        if not dtype.is_floating_point:
            raw = base.load(key)
            emit(key, raw if reuse else raw.clone())
            del raw
            continue
        if scope == "global" and pool is not None and isinstance(impl, (Pcb, Ties)):
            cache.clear()
            out_t = pool.flat("cout", _numel(shape), out_dtype or dtype)
            col0 = 0
            for cb in chunk_blocks(
                key, base, models, compute_dtype, pool, check=key not in checked
            ):
                width = cb.base.numel()
                piece = impl.delta_(cb, stats, lambdas, pool.flat("cdelta", width, compute_dtype))
                out_t[col0 : col0 + width].copy_(piece.add_(cb.base))  # x + y == y + x exactly
                col0 += width
            emit(key, out_t.reshape(shape))
            del out_t
            continue
        block = cache.pop(key, None)
        cache.clear()
        if (
            block is None
            and pool is not None
            and type(impl) is TaskArithmetic
            and all(hasattr(c, "load_into") for c in [base, *models])
        ):
            out_t = _task_arithmetic_fused(
                key, base, models, lambdas, compute_dtype, out_dtype or dtype, pool
            )
            emit(key, out_t.reshape(shape))
            del out_t
            continue
        if block is None:
            block = load_block(
                key, base, models, compute_dtype, check=key not in checked, pool=pool
            )
        st = stats if scope == "global" else _tensor_stats(impl, block, n)
        base_flat = block.base
        if pool is None:
            delta = impl.delta(block, st, lambdas)
            del block
            merged = base_flat + delta
            del delta, base_flat
            emit(key, merged.to(out_dtype or dtype).reshape(shape))
        else:  # same operations into reused buffers (x + y == y + x exactly)
            delta = impl.delta_(
                block, st, lambdas, pool.flat("delta", base_flat.numel(), block.tv.dtype)
            )
            del block
            merged = delta.add_(base_flat)
            del delta, base_flat
            odt = out_dtype or dtype
            if odt != merged.dtype:
                merged = pool.flat("out", merged.numel(), odt).copy_(merged)
            emit(key, merged.reshape(shape))
        del merged
    return stats


def _numel(shape: Sequence[int]) -> int:
    numel = 1
    for v in shape:
        numel *= v
    return numel


def _tensor_stats(impl: MethodImpl, block: Block, n: int) -> Stats:
    sel = _tensor_selector(impl, block)  # the radix one only for float32 blocks
    sample = None if isinstance(sel, InMemorySelector) else block_sampler(block)
    return impl.stats(only(block), block.base.numel(), n, sel, sample=sample)


def _sample_files(
    keys: Sequence[str],
    d: int,
    base: Checkpoint,
    models: Sequence[Checkpoint],
    dtype: torch.dtype,
    pool: _Pool | None,
) -> Tensor:
    """Task vectors ``(n, s)`` at :func:`sample_positions` of the flattened float tensors ``keys``
    (same arithmetic as :func:`load_block`: cast, then subtract), reading only those entries from
    mapped checkpoints. Not NaN-checked: the statistics pass that follows checks every tensor."""
    pos = sample_positions(d)
    out = torch.empty((len(models), pos.numel()), dtype=dtype)
    start = 0
    off = 0
    for k in keys:
        numel = _numel(base.spec(k)[0])
        stop = int(torch.searchsorted(pos, off + numel))
        if stop > start:
            idx = pos[start:stop] - off
            b = _read(base, k, pool).reshape(-1).index_select(0, idx).to(dtype)
            _release(base, k)
            for i, m in enumerate(models):
                v = _read(m, k, pool).reshape(-1).index_select(0, idx)
                out[i, start:stop].copy_(v).sub_(b)
                _release(m, k)
        start = stop
        off += numel
    return out


def _tensor_selector(impl: MethodImpl, block: Block) -> Selector:
    """Per-tensor PCB and TIES statistics in float32: exact two-pass radix selection (cheaper than
    ``kthvalue``, same values, buffers reused); ``kthvalue`` otherwise."""
    if isinstance(impl, (Pcb, Ties)) and block.tv.dtype == torch.float32:
        return RadixSelector()
    return InMemorySelector()


def _warn_degenerate(impl: MethodImpl, stats: Stats) -> None:
    if isinstance(impl, Pcb):
        flat = [
            i for i in range(len(stats["lo"])) if float(stats["hi"][i]) == float(stats["lo"][i])
        ]
        dropped = [
            i for i in range(len(stats["q"])) if float(stats["max"][i]) <= float(stats["q"][i])
        ]
        if flat or dropped:
            warnings.warn(
                f"PCB: task vector(s) {sorted(set(flat) | set(dropped))} are zero or constant after the "
                "outlier clamp, or have no score above the drop threshold; they contribute nothing",
                RuntimeWarning,
                stacklevel=3,
            )

"""Exact order statistics of per-task quantities spread over many tensors.

Two selectors share one interface. :class:`InMemorySelector` concatenates the quantity of every
block into an ``(n, D)`` matrix and uses ``torch.kthvalue``: it is the official code's computation
and is used in memory. :class:`RadixSelector` never holds more than one block: it maps each float64
value to an order-preserving 64-bit key and finds the k-th smallest by most-significant-digit
radix selection, 16 bits per pass (a 65 536-bin histogram of the digit among the values whose
higher digits match the prefix found so far). As soon as the remaining candidates of a query fit
``gather_limit`` values they are gathered and selected directly. Both return the same values
exactly; the radix version needs 2-3 passes over the blocks for typical data and at most 4.

float32 blocks (the default compute dtype) take a shorter route: their own 32 bits are the key, so
exactly two passes settle every query of a row at once (one histogram of the high 16 bits, one
of the low 16 bits among the values in the chosen bucket), with no float64 copy and no gather.
Histograms are built over fixed-size column chunks, so the temporaries stay small.

With a ``sample`` of the quantity (``s`` seeded random columns), float32 selection usually takes
ONE pass: the sample's order statistics around ``rank·s/d ± 6`` binomial standard deviations give
a bracket ``[A, B]`` per rank (as order-preserving int32 keys, so ``-0.0 < +0.0`` exactly as in
the radix order); the pass counts the keys ``< A``, ``<= A``, ``< B``, ``<= B`` and collects those
strictly between (a few per mille of the values). The k-th is then ``A``, ``B`` or the right one
among the collected keys. If a rank lies outside its bracket, or more than ``max(gather_limit,
2·s)`` keys would be collected, the two-pass route runs instead: the value is exact either way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

_SIGN = -(2**63)
_LOW63 = 2**63 - 1
_DIGIT = 16
_BINS = 1 << _DIGIT
_CHUNK = 1 << 20  # elements per histogram chunk in the float32 path (bounds its temporaries)
_HALF = 1 << 15
_ORDER = torch.cat(  # raw high half-word -> rank of its bucket in float order (negatives reversed)
    [torch.arange(_HALF, _BINS), torch.arange(_HALF - 1, -1, -1)]
)


def float_keys(x: Tensor) -> Tensor:
    """Order-preserving map float64 -> int64, returned with the sign bit flipped (unsigned order)."""
    bits = x.to(torch.float64).contiguous().view(torch.int64)
    key = torch.where(bits < 0, bits ^ _LOW63, bits)
    return key ^ _SIGN


def keys_to_float(ukey: int) -> float:
    key = ukey ^ (1 << 63)
    if key >= 2**63:
        key -= 2**64
    bits = key ^ _LOW63 if key < 0 else key
    return float(torch.tensor([bits], dtype=torch.int64).view(torch.float64).item())


@dataclass
class _Query:
    row: int
    rank: int  # remaining rank inside the current bucket
    level: int = 0  # number of 16-bit digits fixed in ``prefix``
    prefix: int = 0
    gather: bool = False
    value: float | None = None
    hist: Tensor | None = None
    parts: list[Tensor] = field(default_factory=list)


Blocks = Callable[[], Iterable[Tensor]]
"""Calling it yields the ``(n, m)`` blocks of one per-task quantity, the same each time."""


class Selector:
    """Interface: ``select(blocks, ranks, n) -> (values (n, len(ranks)), row max (n,))``.

    ``sample``, optional: ``(n, s)`` values of the same quantity at seeded random positions of the
    ``d`` columns (an unbiased sample). A selector may use it to bracket each rank and settle it in
    one pass; it never changes the result, which is always the exact order statistic."""

    def select(
        self,
        blocks: Blocks,
        ranks: Sequence[int],
        n: int,
        sample: Tensor | None = None,
        d: int = 0,
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class InMemorySelector(Selector):
    """Concatenate every block and use ``torch.kthvalue`` (the official computation)."""

    def select(
        self,
        blocks: Blocks,
        ranks: Sequence[int],
        n: int,
        sample: Tensor | None = None,
        d: int = 0,
    ) -> tuple[Tensor, Tensor]:
        parts = list(blocks())
        full = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if ranks:
            vals = torch.stack([torch.kthvalue(full, r + 1, dim=1).values for r in ranks], dim=1)
        else:
            vals = torch.empty(n, 0, dtype=full.dtype)
        return vals.to(torch.float64), full.max(dim=1).values.to(torch.float64)


class RadixSelector(Selector):
    """Multi-pass exact selection holding one block at a time (see the module docstring)."""

    def __init__(self, gather_limit: int = 1 << 20) -> None:
        if gather_limit < 1:
            raise ValueError(f"gather_limit must be positive, got {gather_limit!r}")
        self.gather_limit = gather_limit
        self.passes = 0
        self.bracket_misses = 0  # bracketed selections that fell back to the two-pass route

    def select(
        self,
        blocks: Blocks,
        ranks: Sequence[int],
        n: int,
        sample: Tensor | None = None,
        d: int = 0,
    ) -> tuple[Tensor, Tensor]:
        it = iter(blocks())
        head = next(it, None)
        if head is not None and head.dtype == torch.float32:
            src32: Iterable[Tensor] = itertools.chain([head], it)
            del head
            if sample is not None and ranks and d > 0 and sample.shape[1] > 0:
                bracketed = self._select_bracket(src32, ranks, n, sample, d)
                if bracketed is not None:
                    return bracketed
                self.bracket_misses += 1
                src32 = blocks()
            return self._select32(src32, blocks, ranks, n)
        start: Iterator[Tensor] | None = itertools.chain([] if head is None else [head], it)
        del head
        queries = [_Query(row=i, rank=r) for i in range(n) for r in ranks]
        top = torch.full((n,), float("-inf"), dtype=torch.float64)
        first = True
        while first or any(q.value is None for q in queries):
            self.passes += 1
            active = [q for q in queries if q.value is None]
            for q in active:
                q.hist = None
                q.parts = []
            source, start = (start if start is not None else blocks()), None
            for block in source:
                if first and block.shape[1]:
                    top = torch.maximum(top, block.max(dim=1).values.to(torch.float64))
                for row in sorted(
                    {q.row for q in active}
                ):  # one row at a time bounds the temporaries
                    v64 = block[row].to(torch.float64)
                    ukeys = float_keys(v64)
                    cache: dict[tuple[int, int, bool], Tensor] = {}
                    for q in active:
                        if q.row != row:
                            continue
                        sig = (q.level, q.prefix, q.gather)
                        if sig not in cache:
                            cache[sig] = self._scan(ukeys, v64, q)
                        res = cache[sig]
                        if q.gather:
                            q.parts.append(res)
                        else:
                            q.hist = res if q.hist is None else q.hist + res
                    del ukeys, v64
                del block
            for q in active:
                self._advance(q)
            first = False
        vals = torch.tensor(
            [[q.value for q in queries[i * len(ranks) : (i + 1) * len(ranks)]] for i in range(n)],
            dtype=torch.float64,
        ).reshape(n, len(ranks))
        return vals, top

    @staticmethod
    def _match(ukeys: Tensor, q: _Query) -> Tensor | None:
        if q.level == 0:
            return None
        shift = 64 - _DIGIT * q.level
        return ((ukeys >> shift) & ((1 << (_DIGIT * q.level)) - 1)) == q.prefix

    def _scan(self, ukeys: Tensor, values: Tensor, q: _Query) -> Tensor:
        match = self._match(ukeys, q)
        if q.gather:
            return values if match is None else values[match]
        sel = ukeys if match is None else ukeys[match]
        shift = 64 - _DIGIT * (q.level + 1)
        digits = (sel >> shift) & (_BINS - 1)
        return torch.bincount(digits, minlength=_BINS)

    def _advance(self, q: _Query) -> None:
        if q.gather:
            cand = torch.cat(q.parts) if q.parts else torch.empty(0, dtype=torch.float64)
            q.value = float(torch.kthvalue(cand, q.rank + 1).values)
            q.parts = []
            return
        assert q.hist is not None
        cum = torch.cumsum(q.hist, 0)
        digit = int(torch.searchsorted(cum, torch.tensor(q.rank, dtype=cum.dtype), right=True))
        below = int(cum[digit - 1]) if digit > 0 else 0
        count = int(q.hist[digit])
        q.rank -= below
        q.prefix = (q.prefix << _DIGIT) | digit
        q.level += 1
        q.hist = None
        if q.level == 64 // _DIGIT:
            q.value = keys_to_float(q.prefix)  # every candidate has these exact bits
        elif count <= self.gather_limit:
            q.gather = True

    # ------------------------------------------------------------------------- float32: 2 passes

    def _select32(
        self, first: Iterable[Tensor], blocks: Blocks, ranks: Sequence[int], n: int
    ) -> tuple[Tensor, Tensor]:
        """Exact k-th values of float32 blocks: high half-word histogram, then low half-word."""
        top = torch.full((n,), float("-inf"), dtype=torch.float64)
        high = torch.zeros((n, _BINS), dtype=torch.int64)
        self.passes += 1
        for block in first:
            if block.shape[1]:
                top = torch.maximum(top, block.amax(dim=1).to(torch.float64))
                for row in range(n):
                    high[row] += _half_histogram(block[row], None)
            del block
        # bucket of every query: ``raw`` is the stored high half-word, ``rest`` the rank inside it
        plan: list[list[tuple[int, int]]] = []
        for row in range(n):
            counts = torch.zeros(_BINS, dtype=torch.int64)
            counts[_ORDER] = high[row]
            cum = torch.cumsum(counts, 0)
            found = []
            for r in ranks:
                pos = int(torch.searchsorted(cum, torch.tensor(r, dtype=cum.dtype), right=True))
                below = int(cum[pos - 1]) if pos > 0 else 0
                raw = pos - _HALF if pos >= _HALF else _BINS - 1 - pos
                found.append((raw, r - below))
            plan.append(found)
        wanted = [sorted({raw for raw, _ in plan[row]}) for row in range(n)]
        low = {
            (row, raw): torch.zeros(_BINS, dtype=torch.int64)
            for row in range(n)
            for raw in wanted[row]
        }
        self.passes += 1
        for block in blocks():
            if block.shape[1]:
                for row in range(n):
                    for raw, h in zip(wanted[row], _low_histograms(block[row], wanted[row])):
                        low[row, raw] += h
            del block
        vals = torch.empty((n, len(ranks)), dtype=torch.float64)
        for row in range(n):
            for j, (raw, rest) in enumerate(plan[row]):
                counts = low[row, raw]
                if raw >= _HALF:  # negative floats: a larger low half-word is a smaller value
                    counts = counts.flip(0)
                cum = torch.cumsum(counts, 0)
                pos = int(torch.searchsorted(cum, torch.tensor(rest, dtype=cum.dtype), right=True))
                lo16 = pos if raw < _HALF else _BINS - 1 - pos
                bits = (raw << 16) | lo16
                if bits >= 1 << 31:
                    bits -= 1 << 32
                vals[row, j] = float(torch.tensor([bits], dtype=torch.int32).view(torch.float32))
        return vals, top

    # ---------------------------------------------------------- float32: 1 pass with a bracket

    def _select_bracket(
        self, first: Iterable[Tensor], ranks: Sequence[int], n: int, sample: Tensor, d: int
    ) -> tuple[Tensor, Tensor] | None:
        """One pass: bracket every rank by the sample's order statistics ``[A, B]`` (in
        order-preserving int32 keys), count the keys below/at each end and collect the keys
        strictly between; the k-th is then ``A``, ``B`` or found among the collected ones.
        Returns None (caller falls back to :meth:`_select32`) when a rank is outside its bracket
        or more than ``max(gather_limit, 2·s)`` keys would be collected."""
        s = sample.shape[1]
        skeys = torch.from_numpy(
            order_keys32(sample.to(torch.float32).contiguous().view(torch.int32).numpy())
        )
        skeys = torch.sort(skeys, dim=1).values
        # queries[row] = [(rank, A, B)], A/B as python ints (sentinels count nothing/everything)
        queries: list[list[tuple[int, int, int]]] = []
        for row in range(n):
            qs = []
            for r in ranks:
                a, b = _bracket(r, d, s)
                ka = int(skeys[row, a]) if a >= 0 else _I32_MIN
                kb = int(skeys[row, b]) if b < s else _I32_MAX
                qs.append((r, ka, kb))
            queries.append(qs)
        del skeys
        cap = max(self.gather_limit, 2 * s)
        counts = np.zeros((n, len(ranks), 4), dtype=np.int64)  # <A, <=A, <B, <=B
        inner: list[list[list[np.ndarray]]] = [[[] for _ in ranks] for _ in range(n)]
        gathered = 0
        top = torch.full((n,), float("-inf"), dtype=torch.float64)
        w = _BRACKET_CHUNK
        kbuf = np.empty(w, dtype=np.int32)
        m1, m2 = np.empty(w, dtype=np.bool_), np.empty(w, dtype=np.bool_)
        self.passes += 1
        for block in first:
            if block.shape[1]:
                top = torch.maximum(top, block.amax(dim=1).to(torch.float64))
                for row in range(n):
                    bits = block[row].view(torch.int32).numpy()
                    for j in range(0, bits.shape[0], w):
                        part = bits[j : j + w]
                        k = part.shape[0]
                        # non-negative bit patterns (e.g. |τ|) are their own keys
                        keys = part if part.min() >= 0 else order_keys32(part, kbuf[:k])
                        a1, a2 = m1[:k], m2[:k]
                        for qi, (_, ka, kb) in enumerate(queries[row]):
                            c = counts[row, qi]
                            if ka != _I32_MIN:  # else nothing is below A
                                c[0] += np.count_nonzero(np.less(keys, ka, out=a1))
                            if kb != _I32_MAX:  # else everything is at most B
                                c[3] += np.count_nonzero(np.less_equal(keys, kb, out=a1))
                            else:
                                c[3] += k
                            if ka == kb:
                                c[1] += np.count_nonzero(np.less_equal(keys, ka, out=a1))
                                continue
                            c[2] += np.count_nonzero(np.less(keys, kb, out=a2))
                            c[1] += np.count_nonzero(np.less_equal(keys, ka, out=a1))
                            np.logical_not(a1, out=a1)
                            a1 &= a2
                            sel = keys[a1]
                            if sel.size:
                                gathered += sel.size
                                if gathered > cap:
                                    return None
                                inner[row][qi].append(sel)
            del block
        vals = torch.empty((n, len(ranks)), dtype=torch.float64)
        for row in range(n):
            for qi, (r, ka, kb) in enumerate(queries[row]):
                lt_a, le_a, lt_b, le_b = (int(v) for v in counts[row, qi])
                if ka == kb:
                    lt_b = le_a
                if not lt_a <= r < le_b:
                    return None  # the sample's bracket missed this rank
                if r < le_a:
                    key = ka
                elif r < lt_b:
                    cand = np.concatenate(inner[row][qi])
                    key = int(np.partition(cand, r - le_a)[r - le_a])
                else:
                    key = kb
                vals[row, qi] = _key32_to_float(key)
        return vals, top


_BRACKET_CHUNK = 1 << 15  # elements per chunk of the bracket counts (masks stay in cache)
_BRACKET_Z = 6.0  # half-width of the sample bracket in binomial standard deviations
_I32_MIN = -(2**31)  # key of no float32 (a NaN pattern): "< A" counts nothing
_I32_MAX = 2**31 - 1  # likewise: "<= B" counts everything


def order_keys32(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Order-preserving int32 keys of float32 bit patterns (``-0.0 < +0.0``, the order of the
    radix route): negatives get their 31 magnitude bits flipped. An involution."""
    if out is None:
        out = np.empty_like(bits)
    np.right_shift(bits, 31, out=out)
    np.bitwise_and(out, 0x7FFFFFFF, out=out)
    np.bitwise_xor(out, bits, out=out)
    return out


def _key32_to_float(key: int) -> float:
    bits = order_keys32(np.array([key], dtype=np.int32))
    return float(bits.view(np.float32)[0])


def _bracket(rank: int, d: int, s: int) -> tuple[int, int]:
    """Sample positions ``(a, b)`` (0-based, may fall outside ``[0, s)``) whose values bracket
    the ``rank``-th of ``d`` values with high probability: the expected sample position of the
    rank ± ``_BRACKET_Z`` binomial standard deviations (and two positions of slack)."""
    p = (rank + 0.5) / d
    center = p * s
    half = _BRACKET_Z * math.sqrt(s * p * (1.0 - p)) + 2.0
    return math.floor(center - half), math.ceil(center + half)


def _low_histograms(row: Tensor, raws: Sequence[int]) -> list[Tensor]:
    """``[_half_histogram(row, raw) for raw in raws]`` with one shift per chunk for all of them."""
    if len(raws) == 1:
        return [_half_histogram(row, raws[0])]
    bits = row.view(torch.int32)
    outs = [torch.zeros(_BINS, dtype=torch.int64) for _ in raws]
    signed = [raw - _BINS if raw >= _HALF else raw for raw in raws]
    for j in range(0, bits.numel(), _CHUNK):
        part = bits[j : j + _CHUNK]
        hi = part >> 16
        for out, sv in zip(outs, signed):
            sel = part[hi == sv]
            if sel.numel():
                out += torch.bincount(sel.bitwise_and_(_BINS - 1), minlength=_BINS)
    return outs


def _half_histogram(row: Tensor, raw: int | None) -> Tensor:
    """Counts of one float32 row's high half-words (``raw=None``) or, among the values whose high
    half-word is ``raw``, of their low half-words; bins indexed by the stored 16-bit pattern."""
    bits = row.view(torch.int32)
    out = torch.zeros(_BINS, dtype=torch.int64)
    signed = raw - _BINS if raw is not None and raw >= _HALF else raw
    for j in range(0, bits.numel(), _CHUNK):
        part = bits[j : j + _CHUNK]
        hi = part >> 16  # arithmetic shift: the high half-word as a signed 16-bit value
        if signed is None:
            hi.bitwise_and_(_BINS - 1)
            out += torch.bincount(hi, minlength=_BINS)
        else:
            sel = part[hi == signed]
            if sel.numel():
                out += torch.bincount(sel.bitwise_and_(_BINS - 1), minlength=_BINS)
    return out

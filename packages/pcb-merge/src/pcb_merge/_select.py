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

With a ``sample`` of the quantity (``s`` seeded columns), float32 selection usually takes ONE
pass: the sample's order statistics around ``rank·s/d ± 6`` binomial standard deviations give a
bracket ``[A, B]`` per rank (as order-preserving int32 keys, so ``-0.0 < +0.0`` exactly as in the
radix order). The pass collects the keys inside each bracket (one wrapping subtraction and one
unsigned comparison per key) and counts those below it. Refinements that keep it exact: a bracket
end with few keys expected beyond it (an extreme rank) is opened to the end of the key range, so
nothing needs counting there, and the two tails of a row are collected by one mask; an end that
the sample shows to be a heavy tie (e.g. the exact zeros of |τ|) has its copies counted instead
of collected; against bounds >= 0 the raw float bit patterns order like the keys, so the per-key
conversion is skipped. The k-th is then a tied end or the right one among the collected keys. If
a rank lies outside its bracket, or more than ``max(gather_limit, 2·s)`` keys would be collected,
the two-pass route runs instead: the value is exact either way.
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
    one pass; it never changes the result, which is always the exact order statistic.
    ``need_top=False``: the caller ignores the row maxima, which a selector may then skip (and
    return NaN)."""

    def select(
        self,
        blocks: Blocks,
        ranks: Sequence[int],
        n: int,
        sample: Tensor | None = None,
        d: int = 0,
        need_top: bool = True,
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
        need_top: bool = True,
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
        need_top: bool = True,
    ) -> tuple[Tensor, Tensor]:
        it = iter(blocks())
        head = next(it, None)
        if head is not None and head.dtype == torch.float32:
            src32: Iterable[Tensor] = itertools.chain([head], it)
            del head
            if sample is not None and ranks and d > 0 and sample.shape[1] > 0:
                bracketed = self._select_bracket(src32, ranks, n, sample, d, need_top)
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
        self,
        first: Iterable[Tensor],
        ranks: Sequence[int],
        n: int,
        sample: Tensor,
        d: int,
        need_top: bool = True,
    ) -> tuple[Tensor, Tensor] | None:
        """One pass: bracket every rank by the sample's order statistics ``[A, B]`` (in
        order-preserving int32 keys), collect the keys inside the bracket, count those below
        it and the copies of an end that the sample shows to be tied (typically exact zeros);
        the k-th is then an end or the right one among the collected keys. A bracket end that
        is expected to have few keys beyond it (an extreme rank) is opened to the end of the key
        range, so no count is needed there, and the two tails of a row share one mask.
        Returns None (caller falls back to :meth:`_select32`) when a rank is outside its
        bracket or more than ``max(gather_limit, 2·s)`` keys would be collected."""
        s = sample.shape[1]
        cap = max(self.gather_limit, 2 * s)
        edge = cap // 8  # expected keys beyond a bracket end below which that end is opened
        ends = []  # sample positions of the bracket ends, None where opened
        for r in ranks:
            a, b = _bracket(r, d, s)
            ends.append(
                (
                    None if a < 0 or (a + 1) * d <= edge * s else a,
                    None if b >= s or (s - b) * d <= edge * s else b,
                )
            )
        kth = sorted({p for pair in ends for p in pair if p is not None})
        skeys = order_keys32(sample.to(torch.float32).contiguous().view(torch.int32).numpy())
        if kth:  # only these sample order statistics are needed: O(s), not a sort
            skeys = np.partition(skeys, kth, axis=1)
        plans: list[_RowPlan] = []
        for row in range(n):
            sk = skeys[row]

            queries = []
            for r, (pa, pb) in zip(ranks, ends):
                ka = None if pa is None else int(sk[pa])
                kb = None if pb is None else int(sk[pb])
                queries.append(
                    _Query32(
                        r,
                        ka,
                        kb,
                        ka is not None and _tied(sk, ka, d, edge),
                        kb is not None and _tied(sk, kb, d, edge),
                    )
                )
            plans.append(_RowPlan(queries))
        del skeys
        gathered = 0
        top = torch.full((n,), float("-inf") if need_top else float("nan"), dtype=torch.float64)
        w = _BRACKET_CHUNK
        kbuf = np.empty(w, dtype=np.int32)
        ubuf = np.empty(w, dtype=np.int32)
        mask = np.empty(w, dtype=np.bool_)
        m2 = np.empty(w, dtype=np.bool_)
        self.passes += 1
        for block in first:
            if block.shape[1]:
                if need_top:
                    top = torch.maximum(top, block.amax(dim=1).to(torch.float64))
                for row in range(n):
                    plan = plans[row]
                    bits = block[row].view(torch.int32).numpy()
                    for j in range(0, bits.shape[0], w):
                        part = bits[j : j + w]
                        k = part.shape[0]
                        plan.total += k
                        # raw bit patterns order like keys against bounds >= 0 (see _RowPlan)
                        keys = part if plan.raw else order_keys32(part, kbuf[:k])
                        u, m = ubuf[:k].view(np.uint32), mask[:k]
                        for c in plan.counters:
                            if c.equal and c.key == 0:  # exact zeros: k − the non-zero keys
                                c.value += k - np.count_nonzero(keys)
                                continue
                            op = np.equal if c.equal else np.less
                            c.value += np.count_nonzero(op(keys, c.key, out=m))
                        for g in plan.gathers:
                            if g.below is not None:  # [lo, hi] = (key <= hi) and not (key < lo)
                                g.below.value += np.count_nonzero(
                                    np.less(keys, g.below.key, out=m2[:k])
                                )
                                np.less_equal(keys, g.hi_key, out=m)
                                np.greater(m, m2[:k], out=m)
                            else:
                                if g.shift:
                                    np.subtract(keys, g.shift, out=u.view(np.int32))  # wraps
                                    x = u
                                else:
                                    x = keys.view(np.uint32)
                                (np.greater if g.outside else np.less_equal)(x, g.width, out=m)
                            sel = np.compress(m, keys)
                            if sel.size:
                                gathered += sel.size
                                if gathered > cap:
                                    return None
                                g.parts.append(sel)
            del block
        vals = torch.empty((n, len(ranks)), dtype=torch.float64)
        for row in range(n):
            found = plans[row].finish()
            if found is None:
                return None  # the sample's bracket missed a rank
            for qi, key in enumerate(found):
                vals[row, qi] = _key32_to_float(key)
        return vals, top


def _tied(sample_keys: np.ndarray, key: int, d: int, edge: int) -> bool:
    """Whether the sample shows ``key`` to be a heavy tie in the data (count its copies instead
    of collecting them): two or more copies in the sample, and more than ``edge`` expected among
    the ``d`` values (a few thousand copies are cheaper to collect than to count)."""
    copies = int(np.count_nonzero(sample_keys == key))
    return copies > 1 and copies * d > edge * sample_keys.shape[0]


@dataclass
class _Counter:
    """Per-pass count of the keys ``== key`` (``equal``) or ``< key``."""

    key: np.int32
    equal: bool
    value: int = 0


@dataclass
class _Gather:
    """Keys collected in one pass: ``[lo, hi]``, or with ``outside`` the two tails ``<= hi``
    and ``>= lo`` of a row, tested by one wrapping subtraction and one unsigned comparison."""

    lo: int
    hi: int
    outside: bool = False
    parts: list[np.ndarray] = field(default_factory=list)
    below: _Counter | None = None  # the count of keys < lo, whose mask this gather reuses

    def __post_init__(self) -> None:
        self.hi_key = np.int32(self.hi)
        if self.outside:  # u = key − (hi + 1) > lo − hi − 2 (unsigned): not in (hi, lo)
            self.shift, self.width = np.int32(self.hi + 1), np.uint32(self.lo - self.hi - 2)
        else:  # u = key − lo <= hi − lo (unsigned)
            self.shift, self.width = np.int32(self.lo), np.uint32(self.hi - self.lo)

    def keys(self, raw: bool) -> np.ndarray:
        if not self.parts:
            return np.empty(0, dtype=np.int32)
        got = np.concatenate(self.parts)
        return order_keys32(got) if raw else got  # raw bit patterns -> keys (an involution)


class _Query32:
    """One rank's bracket ``[A, B]`` (None: opened to the end of the key range). Keys strictly
    between a tied end and the other end are collected; a tied end's copies are counted."""

    def __init__(self, rank: int, a: int | None, b: int | None, tie_a: bool, tie_b: bool):
        if a is not None and a == b:
            tie_a, tie_b = True, False  # one tied value: count it, collect nothing
        self.rank, self.a, self.b = rank, a, b
        self.lo = _I32_MIN if a is None else a + 1 if tie_a else a
        self.hi = _I32_MAX if b is None else b - 1 if tie_b else b
        self.eq_a = _Counter(np.int32(a), True) if a is not None and tie_a else None
        self.eq_b = _Counter(np.int32(b), True) if b is not None and tie_b else None
        # keys below ``lo``: none when opened at the bottom, total − collected when opened at
        # the top (every key >= lo is collected), counted otherwise
        self.below = (
            _Counter(np.int32(self.lo), False)
            if self.lo != _I32_MIN and self.hi != _I32_MAX
            else None
        )
        self.gather: _Gather | None = None  # the collection holding this query's keys


class _RowPlan:
    """The queries of one row: their counters and collection masks (two tails share one)."""

    def __init__(self, queries: list[_Query32]) -> None:
        self.queries = queries
        self.total = 0
        wide = sorted((q for q in queries if q.lo <= q.hi), key=lambda q: q.lo)
        groups: list[list[_Query32]] = []  # overlapping ranges share one collection
        for q in wide:
            if groups and q.lo <= max(g.hi for g in groups[-1]) + 1:
                groups[-1].append(q)
            else:
                groups.append([q])
        spans = [(min(q.lo for q in g), max(q.hi for q in g)) for g in groups]
        if (
            len(spans) == 2
            and spans[0][0] == _I32_MIN
            and spans[1][1] == _I32_MAX
            and spans[1][0] >= spans[0][1] + 2
        ):
            self.gathers = [_Gather(spans[1][0], spans[0][1], outside=True)]
            groups = [groups[0] + groups[1]]
        else:
            self.gathers = [_Gather(lo, hi) for lo, hi in spans]
        for g, members in zip(self.gathers, groups):
            for q in members:
                q.gather = g
            if not g.outside and g.lo != _I32_MIN and g.hi != _I32_MAX:
                g.below = next((q.below for q in members if q.lo == g.lo and q.below), None)
        paired = {id(g.below) for g in self.gathers if g.below is not None}
        self.counters = [
            c
            for q in queries
            for c in (q.below, q.eq_a, q.eq_b)
            if c is not None and id(c) not in paired
        ]
        # Raw float32 bit patterns compare like the order keys against any bound >= 0 (negative
        # floats have negative patterns and keys; non-negative ones are their own keys), and
        # the keys <= -1 are exactly the negative patterns, so the per-key conversion is skipped
        # when every finite bound is >= 0 (or is the -1 that ends a bottom-opened range).
        bounds = [int(c.key) for c in self.counters]
        for g in self.gathers:
            bottom_open = g.outside or g.lo == _I32_MIN  # then g.hi ends the bottom range
            if g.lo != _I32_MIN:
                bounds.append(g.lo)
            if g.hi != _I32_MAX and not (bottom_open and g.hi == -1):
                bounds.append(g.hi)
        self.raw = all(v >= 0 for v in bounds)

    def finish(self) -> list[int] | None:
        """The key of every rank, or None when one lies outside its bracket."""
        out: list[int] = []
        for q in self.queries:
            got = np.empty(0, dtype=np.int32)
            if q.gather is not None:
                got = q.gather.keys(self.raw)
                if q.gather.outside or (q.gather.lo, q.gather.hi) != (q.lo, q.hi):
                    got = got[(got >= q.lo) & (got <= q.hi)]
            if q.lo == _I32_MIN:
                below = 0
            elif q.hi == _I32_MAX:
                below = self.total - got.size
            else:
                assert q.below is not None
                below = q.below.value
            r = q.rank
            if q.eq_a is not None:  # the copies of A sit just below lo = A + 1
                below -= q.eq_a.value
                if below <= r < below + q.eq_a.value and q.a is not None:
                    out.append(q.a)
                    continue
                below += q.eq_a.value
            if below <= r < below + got.size:
                out.append(int(np.partition(got, r - below)[r - below]))
                continue
            below += got.size
            if q.eq_b is not None and below <= r < below + q.eq_b.value and q.b is not None:
                out.append(q.b)
                continue
            return None
        return out


_BRACKET_CHUNK = 1 << 18  # elements per chunk of the bracket pass (masks stay in L2)
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

"""Exact order statistics of per-task quantities spread over many tensors.

Two selectors share one interface. :class:`InMemorySelector` concatenates the quantity of every
block into an ``(n, D)`` matrix and uses ``torch.kthvalue``: it is the official code's computation
and is used in memory. :class:`RadixSelector` never holds more than one block: it maps each float64
value to an order-preserving 64-bit key and finds the k-th smallest by most-significant-digit
radix selection, 16 bits per pass (a 65 536-bin histogram of the digit among the values whose
higher digits match the prefix found so far). As soon as the remaining candidates of a query fit
``gather_limit`` values they are gathered and selected directly. Both return the same values
exactly; the radix version needs 2-3 passes over the blocks for typical data and at most 4.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

_SIGN = -(2**63)
_LOW63 = 2**63 - 1
_DIGIT = 16
_BINS = 1 << _DIGIT


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
    """Interface: ``select(blocks, ranks, n) -> (values (n, len(ranks)), row max (n,))``."""

    def select(self, blocks: Blocks, ranks: Sequence[int], n: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class InMemorySelector(Selector):
    """Concatenate every block and use ``torch.kthvalue`` (the official computation)."""

    def select(self, blocks: Blocks, ranks: Sequence[int], n: int) -> tuple[Tensor, Tensor]:
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

    def select(self, blocks: Blocks, ranks: Sequence[int], n: int) -> tuple[Tensor, Tensor]:
        queries = [_Query(row=i, rank=r) for i in range(n) for r in ranks]
        top = torch.full((n,), float("-inf"), dtype=torch.float64)
        first = True
        while first or any(q.value is None for q in queries):
            self.passes += 1
            active = [q for q in queries if q.value is None]
            for q in active:
                q.hist = None
                q.parts = []
            for block in blocks():
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

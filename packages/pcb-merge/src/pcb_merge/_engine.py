"""One merge loop for every method, scope and storage.

A method is a small object with two hooks: ``stats`` gathers the whole-row statistics it needs
(order statistics through a :class:`~pcb_merge._select.Selector`, or sums), and ``delta`` turns
one block of task vectors into the merged update using those statistics. ``scope="tensor"``
calls both on each tensor alone; ``scope="global"`` calls ``stats`` once over all float tensors
(the official flattened model) and then ``delta`` tensor by tensor.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pcb_merge import functional as F
from pcb_merge._select import InMemorySelector, Selector
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


class MethodImpl:
    name = ""

    def stats(self, blocks: BlockSource, d: int, n: int, selector: Selector) -> Stats:
        return {}

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        return {"merge_method": self.name}


class TaskArithmetic(MethodImpl):
    name = "task_arithmetic"

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        return (block.tv * lambdas.to(block.tv.dtype).unsqueeze(1)).sum(dim=0)


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
        return (kept * lambdas.to(kept.dtype).unsqueeze(1)).sum(dim=0)

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

    def stats(self, blocks: BlockSource, d: int, n: int, selector: Selector) -> Stats:
        rank = F.ties_rank(d, self.density)
        if rank < 0:
            thr = torch.full((n,), float("-inf"), dtype=torch.float64)
        else:
            vals, _ = selector.select(lambda: (b.tv.abs() for b in blocks()), [rank], n)
            thr = vals[:, 0]
        total = torch.zeros((), dtype=torch.float64)
        for b in blocks():  # majority sign over the whole scope, for coordinates whose sum is 0
            trimmed = F.ties_trim(b.tv, thr.to(b.tv.dtype))
            total += torch.sign(trimmed.sum(dim=0)).sum(dtype=torch.float64)
        return {"threshold": thr, "majority": float(torch.sign(total))}

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        trimmed = F.ties_trim(block.tv, stats["threshold"].to(block.tv.dtype))
        gamma = F.elect_sign(trimmed, stats["majority"])
        return F.disjoint_mean(trimmed, gamma, lambdas)

    def describe(self) -> dict[str, str]:
        return {"merge_method": self.name, "density": repr(self.density)}


class Pcb(MethodImpl):
    name = "pcb"

    def __init__(self, ratio: float, outlier: float, inter: str) -> None:
        self.ratio, self.outlier, self.inter = ratio, outlier, inter

    def stats(self, blocks: BlockSource, d: int, n: int, selector: Selector) -> Stats:
        lo_i, hi_i, q_i = F.pcb_rank_indices(d, self.ratio, self.outlier)
        vals, _ = selector.select(lambda: (b.tv.abs() for b in blocks()), [lo_i, hi_i], n)
        lo, hi = vals[:, 0], vals[:, 1]

        def betas() -> Iterator[Tensor]:
            for b in blocks():
                yield self._beta(b, lo, hi)

        qv, top = selector.select(betas, [q_i], n)
        return {"lo": lo, "hi": hi, "q": qv[:, 0], "max": top}

    def _beta(self, b: Block, lo: Tensor, hi: Tensor) -> Tensor:
        lo_c, hi_c = lo.to(b.tv.dtype), hi.to(b.tv.dtype)
        a, _ = F.pcb_clamp(b.tv, lo_c, hi_c)
        return F.pcb_beta(b.tv, a, lo_c, hi_c, inter=self.inter)

    def parts(self, block: Block, stats: Stats) -> tuple[Tensor, Tensor]:
        """``(ĉ, s)`` of one block: clamped task vectors and drop-and-rescale weights."""
        dt = block.tv.dtype
        lo, hi = stats["lo"].to(dt), stats["hi"].to(dt)
        a, clamped = F.pcb_clamp(block.tv, lo, hi)
        beta = F.pcb_beta(block.tv, a, lo, hi, inter=self.inter)
        scale = F.pcb_scale(beta, stats["q"].to(dt), stats["max"].to(dt))
        return clamped, scale

    def delta(self, block: Block, stats: Stats, lambdas: Tensor) -> Tensor:
        clamped, scale = self.parts(block, stats)
        return F.pcb_merge_rows(clamped, scale, lambdas)

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


def _finite(t: Tensor, key: str, who: str) -> Tensor:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"tensor {key!r} of {who} contains NaN or Inf")
    return t


def load_block(
    key: str, base: Checkpoint, models: Sequence[Checkpoint], dtype: torch.dtype
) -> Block:
    b = _finite(base.load(key), key, base.name)
    shape = tuple(b.shape)
    b = b.to(dtype).reshape(-1)
    tv = torch.empty((len(models), b.numel()), dtype=dtype)
    for i, m in enumerate(models):
        tv[i] = _finite(m.load(key), key, m.name).to(dtype).reshape(-1) - b
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
) -> Stats:
    """Merge and hand every output tensor to ``emit`` in base key order. Returns global stats."""
    keys = list(keys) if keys is not None else check_compatible(base, models)
    float_keys = [k for k in keys if base.spec(k)[1].is_floating_point]
    n = len(models)
    stats: Stats = {}
    if scope == "global" and float_keys:
        d = 0
        for k in float_keys:
            numel = 1
            for s in base.spec(k)[0]:
                numel *= s
            d += numel
        sel = selector or InMemorySelector()
        counter = {"pass": 0}

        def blocks() -> Iterator[Block]:
            counter["pass"] += 1
            for k in _progress(
                float_keys, len(float_keys), f"statistics pass {counter['pass']}", progress
            ):
                yield load_block(k, base, models, compute_dtype)

        stats = impl.stats(blocks, d, n, sel)
        _warn_degenerate(impl, stats)
    for key in _progress(keys, len(keys), "merging", progress):
        shape, dtype = base.spec(key)
        if not dtype.is_floating_point:
            emit(key, base.load(key).clone())
            continue
        block = load_block(key, base, models, compute_dtype)
        st = (
            stats
            if scope == "global"
            else impl.stats(only(block), block.base.numel(), n, InMemorySelector())
        )
        merged = block.base + impl.delta(block, st, lambdas)
        emit(key, merged.to(out_dtype or dtype).reshape(shape))
    return stats


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

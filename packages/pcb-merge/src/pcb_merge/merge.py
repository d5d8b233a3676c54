"""Merging methods on in-memory state dicts: base plus N fine-tuned state dicts in, merged out.

Every method has the same shape::

    merged = pcb(base, [sd_1, sd_2, sd_3], ratio=0.1, lambdas=1.0, scope="global")

``scope="global"`` takes every statistic over the whole model flattened into one row per task, as
the official PCB and TIES code does; ``scope="tensor"`` takes it per tensor, as mergekit and peft
do. Task arithmetic and DARE are elementwise, so their scope changes nothing. Non-float entries
(``num_batches_tracked``, integer buffers) are copied from the base. Statistics are computed in
``compute_dtype`` (float32 or float64) whatever the storage dtype; the output has the base's dtype
unless ``out_dtype`` is given. Inputs are never modified.

For checkpoints on disk, :func:`pcb_merge.merge_files` streams the same computation tensor by tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pcb_merge import _validate as V
from pcb_merge._engine import (
    Dare,
    MethodImpl,
    Pcb,
    TaskArithmetic,
    Ties,
    _warn_degenerate,
    check_compatible,
    load_block,
    only,
    run,
)
from pcb_merge._select import InMemorySelector
from pcb_merge.checkpoints import Checkpoint, open_checkpoint
from pcb_merge.functional import pcb_merge_rows

__all__ = ["PCB", "PCBScores", "dare", "make_method", "pcb", "task_arithmetic", "ties"]

StateDict = dict[str, Tensor]


def make_method(method: str, **params: Any) -> MethodImpl:
    """The method object for ``method`` with validated parameters (used by every front end)."""
    if method == "task_arithmetic":
        _no_extra(method, params, set())
        return TaskArithmetic()
    if method == "ties":
        _no_extra(method, params, {"density"})
        return Ties(V.fraction("density", params.get("density", 0.2)))
    if method == "dare":
        _no_extra(method, params, {"p", "rescale", "seed"})
        seed = params.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        rescale = params.get("rescale", True)
        if not isinstance(rescale, bool):
            raise TypeError(f"rescale must be a bool, got {rescale!r}")
        return Dare(V.drop_rate("p", params.get("p", 0.9)), rescale, seed)
    if method == "pcb":
        _no_extra(method, params, {"ratio", "outlier", "inter"})
        return Pcb(
            V.fraction("ratio", params.get("ratio", 0.1)),
            V.outlier(params.get("outlier", 0.01)),
            V.inter(params.get("inter", "sum")),
        )
    raise ValueError(f"method must be one of {V.METHODS}, got {method!r}")


def _no_extra(method: str, params: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(params) - allowed)
    if extra:
        raise ValueError(
            f"{method} does not take parameter(s) {extra} (it takes {sorted(allowed) or 'none'})"
        )


def _open(base: Any, models: Any) -> tuple[Checkpoint, list[Checkpoint]]:
    if isinstance(models, (Mapping, str)) or not isinstance(models, Sequence):
        raise TypeError(
            f"models must be a sequence of state dicts or paths, got {type(models).__name__}"
        )
    V.n_models(len(models), "")
    b = open_checkpoint(base, name="base")
    ms = [open_checkpoint(m, name=f"models[{i}]") for i, m in enumerate(models)]
    return b, ms


def _merge(
    impl: MethodImpl,
    base: Any,
    models: Any,
    *,
    lambdas: Any,
    scope: str,
    compute_dtype: Any,
    out_dtype: Any,
) -> StateDict:
    b, ms = _open(base, models)
    lam = V.lambdas(lambdas, len(ms))
    out: StateDict = {}
    run(
        impl,
        b,
        ms,
        scope=V.scope(scope),
        lambdas=lam,
        compute_dtype=V.compute_dtype(compute_dtype),
        out_dtype=V.out_dtype(out_dtype),
        emit=out.__setitem__,
        selector=InMemorySelector(),
    )
    return out


def task_arithmetic(
    base: Mapping[str, Tensor],
    models: Sequence[Mapping[str, Tensor]],
    *,
    lambdas: float | Sequence[float] = 0.3,
    scope: str = "tensor",
    compute_dtype: Any = torch.float32,
    out_dtype: Any = None,
) -> StateDict:
    r"""Task arithmetic (Ilharco et al., 2023): :math:`\theta = \theta_0 + \sum_i \lambda_i \tau_i`.

    Args:
        base: the pre-trained state dict :math:`\theta_0`.
        models: fine-tuned state dicts :math:`\theta_i` with the base's names, shapes and dtypes.
        lambdas: one positive scale for all tasks or one per task (default 0.3).
        scope: ``"global"`` or ``"tensor"``; elementwise, so both give the same result.
        compute_dtype: float32 or float64. out_dtype: output dtype (default: the base's).
    """
    return _merge(
        TaskArithmetic(),
        base,
        models,
        lambdas=lambdas,
        scope=scope,
        compute_dtype=compute_dtype,
        out_dtype=out_dtype,
    )


def ties(
    base: Mapping[str, Tensor],
    models: Sequence[Mapping[str, Tensor]],
    *,
    scope: str,
    density: float = 0.2,
    lambdas: float | Sequence[float] = 1.0,
    compute_dtype: Any = torch.float32,
    out_dtype: Any = None,
) -> StateDict:
    r"""TIES-Merging: trim to the top-``density`` magnitudes, elect signs, disjoint mean.

    .. math::

        \hat\tau_i = \tau_i \odot [|\tau_i| \ge t_i],\quad \gamma = \mathrm{sgn}\sum_i \hat\tau_i,\quad
        \theta = \theta_0 + \frac{\sum_i \lambda_i \hat\tau_i [\mathrm{sgn}\,\hat\tau_i = \gamma]}
        {\max(\#\{i: \mathrm{sgn}\,\hat\tau_i = \gamma\}, 1)}

    with :math:`t_i` the ``k``-th smallest :math:`|\tau_i|`, ``k = d − int(d·density)`` over the
    whole model (``scope="global"``, official) or each tensor (``scope="tensor"``, mergekit). Exact
    zero sign sums take the majority sign of the scope. Per-task ``lambdas`` weight the mean but
    not the vote (the official code has one scalar λ; default 1.0).
    """
    return _merge(
        Ties(V.fraction("density", density)),
        base,
        models,
        lambdas=lambdas,
        scope=scope,
        compute_dtype=compute_dtype,
        out_dtype=out_dtype,
    )


def dare(
    base: Mapping[str, Tensor],
    models: Sequence[Mapping[str, Tensor]],
    *,
    p: float = 0.9,
    rescale: bool = True,
    seed: int = 0,
    lambdas: float | Sequence[float] = 0.3,
    scope: str = "tensor",
    compute_dtype: Any = torch.float32,
    out_dtype: Any = None,
) -> StateDict:
    r"""DARE (Yu et al., 2024): drop each delta entry with probability ``p``, rescale by 1/(1−p), add.

    :math:`\theta = \theta_0 + \sum_i \lambda_i\, m_i \odot \tau_i / (1-p)`, :math:`m_i \sim
    \mathrm{Bernoulli}(1-p)` drawn from a generator seeded by ``(seed, tensor name, task index)``,
    so the result does not depend on traversal order or on in-memory versus streamed merging.
    """
    impl = make_method("dare", p=p, rescale=rescale, seed=seed)
    return _merge(
        impl,
        base,
        models,
        lambdas=lambdas,
        scope=scope,
        compute_dtype=compute_dtype,
        out_dtype=out_dtype,
    )


def pcb(
    base: Mapping[str, Tensor],
    models: Sequence[Mapping[str, Tensor]],
    *,
    scope: str,
    ratio: float = 0.1,
    outlier: float = 0.01,
    inter: str = "sum",
    lambdas: float | Sequence[float] = 1.0,
    compute_dtype: Any = torch.float32,
    out_dtype: Any = None,
) -> StateDict:
    r"""PCB-Merging (Du et al., NeurIPS 2024) exactly as the official code computes it.

    See :mod:`pcb_merge.functional` for the equations. ``ratio`` is the kept fraction ``r``;
    ``outlier`` the clamped fraction ``o`` at each end of :math:`|\tau_i|`; ``inter`` one of
    ``"sum"`` (V1: :math:`\tanh(\tau_i \odot \sum_j \tau_j)`), ``"normalized"`` (V2) or ``"pairwise"``
    (V3). The merged model is :math:`\theta_0 + \sum_i \lambda_i \hat c_i s_i / \max(\sum_i s_i, 10^{-12})`.
    """
    return (
        PCB(ratio=ratio, outlier=outlier, inter=inter, scope=scope, compute_dtype=compute_dtype)
        .fit(base, models)
        .merge(lambdas, out_dtype=out_dtype)
    )


@dataclass
class PCBScores:
    """A fitted PCB: clamped task vectors ``ĉ`` and weights ``s`` per tensor, ready to merge.

    :meth:`merge` only does the weighted average, so a coefficient search never recomputes scores.
    """

    base: dict[str, Tensor]
    clamped: dict[str, Tensor]
    scale: dict[str, Tensor]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, torch.dtype]
    n_models: int
    stats: dict[str, Any] = field(default_factory=dict)

    def merge(self, lambdas: float | Sequence[float] = 1.0, *, out_dtype: Any = None) -> StateDict:
        """The merged state dict for scalar or per-task ``lambdas`` (each > 0)."""
        lam = V.lambdas(lambdas, self.n_models)
        od = V.out_dtype(out_dtype)
        out: StateDict = {}
        for key, base in self.base.items():
            if key not in self.clamped:  # non-float entries, and empty tensors in tensor scope
                keep = base.is_floating_point() and base.numel() == 0
                out[key] = (
                    base.to(od or self.dtypes[key]).reshape(self.shapes[key])
                    if keep
                    else base.clone()
                )
                continue
            delta = pcb_merge_rows(self.clamped[key], self.scale[key], lam)
            out[key] = (base + delta).to(od or self.dtypes[key]).reshape(self.shapes[key])
        return out


class PCB:
    """Two-stage PCB-Merging: :meth:`fit` computes scores once, :meth:`PCBScores.merge` applies λ.

    Example::

        scores = PCB(ratio=0.1, scope="global").fit(base, [sd_a, sd_b])
        merged = scores.merge(1.2)              # or per task: scores.merge([1.1, 0.9])

    Args:
        ratio: kept fraction ``r`` in (0, 1] (official ``pcb_ratio``; default 0.1).
        outlier: clamped fraction ``o`` at each end (0.01 in the scripts behind the paper's tables).
        inter: inter-balancing variant, ``"sum"`` (default), ``"normalized"`` or ``"pairwise"``.
        scope: ``"global"`` (official) or ``"tensor"``; required.
        compute_dtype: float32 or float64 for every score.
    """

    def __init__(
        self,
        *,
        scope: str,
        ratio: float = 0.1,
        outlier: float = 0.01,
        inter: str = "sum",
        compute_dtype: Any = torch.float32,
    ) -> None:
        self.ratio = ratio
        self.outlier = outlier
        self.inter = inter
        self.scope = scope
        self.compute_dtype = compute_dtype

    def fit(self, base: Mapping[str, Tensor], models: Sequence[Mapping[str, Tensor]]) -> PCBScores:
        impl = make_method("pcb", ratio=self.ratio, outlier=self.outlier, inter=self.inter)
        assert isinstance(impl, Pcb)
        scope = V.scope(self.scope)
        dtype = V.compute_dtype(self.compute_dtype)
        b, ms = _open(base, models)
        keys = check_compatible(b, ms)
        float_keys = [k for k in keys if b.spec(k)[1].is_floating_point]
        blocks = {k: load_block(k, b, ms, dtype) for k in float_keys}
        stats: dict[str, Any] = {}
        if scope == "global" and blocks:
            d = sum(bl.base.numel() for bl in blocks.values())
            stats = impl.stats(lambda: blocks.values(), d, len(ms), InMemorySelector())
            _warn_degenerate(impl, stats)
        res = PCBScores({}, {}, {}, {}, {}, len(ms), stats)
        for k in keys:
            shape, dt = b.spec(k)
            res.shapes[k], res.dtypes[k] = shape, dt
            if k not in blocks:
                res.base[k] = b.load(k).clone()
                continue
            bl = blocks[k]
            if scope == "tensor" and bl.base.numel() == 0:
                res.base[k] = bl.base  # nothing to rank: an empty tensor merges to itself
                continue
            st = (
                stats
                if scope == "global"
                else impl.stats(only(bl), bl.base.numel(), len(ms), InMemorySelector())
            )
            res.base[k] = bl.base
            res.clamped[k], res.scale[k] = impl.parts(bl, st)
        return res

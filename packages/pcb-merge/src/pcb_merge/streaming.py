"""Merge checkpoints on disk with bounded memory: read tensor by tensor, write shard by shard.

``scope="tensor"`` makes one pass: for each tensor it loads the base and the N fine-tuned
versions, merges, and streams the result into the output shard. ``scope="global"`` (the official
PCB and TIES) needs whole-model order statistics per task; they are found *exactly* by multi-pass
radix selection (:class:`~pcb_merge._select.RadixSelector`) that holds one tensor's task vectors
at a time (in float32 one pass per statistic, bracketed by a seeded sample of at most 2^22
columns, two passes if the bracket misses), followed by the output pass. Peak memory is therefore
about two times ``(N+1) × largest tensor`` in the compute dtype (one block, chunk-sized score
buffers, the sample), independent of the model size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pcb_merge import _validate as V
from pcb_merge._engine import check_compatible, run
from pcb_merge._select import RadixSelector
from pcb_merge.checkpoints import Checkpoint, SafetensorsWriter, open_checkpoint
from pcb_merge.merge import make_method

__all__ = ["merge_files"]


def merge_files(
    method: str,
    base: str | os.PathLike[str],
    models: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    scope: str,
    lambdas: float | Sequence[float] = 1.0,
    compute_dtype: Any = torch.float32,
    out_dtype: Any = None,
    max_shard_bytes: int = 2 * 1024**3,
    overwrite: bool = False,
    progress: bool = False,
    gather_limit: int = 1 << 20,
    **params: Any,
) -> Path:
    """Merge checkpoint files and write the result atomically as safetensors.

    Args:
        method: ``"task_arithmetic"``, ``"ties"``, ``"dare"`` or ``"pcb"``.
        base: the pre-trained checkpoint: a ``.safetensors`` file, a sharded checkpoint's index
            ``.json``, a folder holding either, or a ``.bin``/``.pt`` state dict (read with
            ``torch.load(weights_only=True)``).
        models: the fine-tuned checkpoints, same forms.
        output: a ``.safetensors`` path (one file) or a folder (shards of at most
            ``max_shard_bytes`` plus ``model.safetensors.index.json`` when there are several).
        scope: ``"global"`` (official, whole-model statistics by exact multi-pass selection) or
            ``"tensor"`` (per tensor, one pass).
        lambdas: positive scale(s), one for all tasks or one per task.
        compute_dtype: float32 or float64; out_dtype: output dtype (default: the base's).
        overwrite: replace an existing output.
        progress: show a progress bar per pass.
        gather_limit: candidates per query below which selection gathers them (memory knob).
        **params: the method's parameters (``density``; ``p``, ``rescale``, ``seed``;
            ``ratio``, ``outlier``, ``inter``).

    Returns:
        The output path. Inputs are never modified; nothing is written on failure.
    """
    impl = make_method(method, **params)
    scope = V.scope(scope)
    cdt = V.compute_dtype(compute_dtype)
    odt = V.out_dtype(out_dtype)
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence):
        raise TypeError(f"models must be a sequence of paths, got {type(models).__name__}")
    V.n_models(len(models), method)
    lam = V.lambdas(lambdas, len(models))
    out = Path(output)
    b: Checkpoint = open_checkpoint(base, name="base")
    ms: list[Checkpoint] = [open_checkpoint(m, name=f"models[{i}]") for i, m in enumerate(models)]
    inputs = {Path(str(p)).resolve() for p in [base, *models]}
    if out.resolve() in inputs:
        raise ValueError(
            f"output={str(output)!r} is one of the inputs; refusing to overwrite an input"
        )
    try:
        keys = check_compatible(b, ms)
        plan = []
        for k in keys:
            shape, dt = b.spec(k)
            plan.append((k, shape, (odt or dt) if dt.is_floating_point else dt))
        meta = {
            "format": "pt",
            "merged_by": "pcb-merge",
            "scope": scope,
            **impl.describe(),
            "lambdas": repr([round(float(x), 6) for x in lam]),
        }
        writer = SafetensorsWriter(
            out, plan, max_shard_bytes=max_shard_bytes, metadata=meta, overwrite=overwrite
        )
        try:
            run(
                impl,
                b,
                ms,
                scope=scope,
                lambdas=lam,
                compute_dtype=cdt,
                out_dtype=odt,
                emit=writer.add,
                selector=RadixSelector(gather_limit),
                progress=progress,
                keys=keys,
                reuse=True,
            )
            return writer.commit()
        except BaseException:
            writer.abort()
            raise
    finally:
        for c in [b, *ms]:
            c.close()

"""The multi-tensor (``foreach=True``) AdamP and SGDP step.

Same math as the per-tensor loop in :mod:`adamp_opt.functional`, arranged for speed:

* the Adam / momentum part uses ``torch._foreach_*`` kernels over all tensors of a
  (device, dtype, step) bucket, like ``torch.optim.AdamW(foreach=True)``;
* the detection statistics of *small* tensors are computed on one flattened buffer with a single
  ``index_add_`` (per-tensor kernel launches dominate for small tensors), those of large tensors
  with one row-wise ``vecdot`` each (no flattening copies);
* the decisions of all tensors are one vectorised :func:`~adamp_opt.functional.projection_scales`
  call, with no host synchronisation;
* the projection and the decoupled weight decay are folded into one per-row factor,
  ``w <- (f + a s_r) w - a u`` with ``f`` the decay factor and ``a`` the step size, which equals
  the official ``w <- f w - a (u - s_r w)`` and saves a full pass over the weights.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch._utils import _flatten_dense_tensors as _flatten_untyped
from torch._utils import _unflatten_dense_tensors as _unflatten_untyped

from adamp_opt.functional import (
    NONE,
    ProjectionMode,
    projection_scales,
    row_broadcast_shape,
    row_statistics,
    stats_dtype,
)

#: tensors with at most this many elements take the flattened statistics path
SMALL_NUMEL = 16384


@dataclass(frozen=True)
class _Layout:
    """Row bookkeeping for one list of projectable tensors (cached per shapes, dim, device, dtype)."""

    order: tuple[int, ...]  # small tensors first, then large; indices into the input list
    n_small: int
    flat_row: Tensor | None  # (N_small,) row index of every element of the small tensors
    n_small_rows: int
    row_to_tensor: Tensor  # (R,) in `order`
    row_len: Tensor  # (T,) in `order`
    numel: Tensor  # (T,) in `order`
    templates: tuple[Tensor, ...]  # meta tensors with each tensor's row-broadcast shape


@functools.lru_cache(maxsize=128)
def _layout(
    shapes: tuple[torch.Size, ...], channel_dim: int, device: torch.device, dtype: torch.dtype
) -> _Layout:
    small = [i for i, s in enumerate(shapes) if math.prod(s) <= SMALL_NUMEL]
    large = [i for i, s in enumerate(shapes) if math.prod(s) > SMALL_NUMEL]
    order = (*small, *large)
    rows = [shapes[i][channel_dim] for i in order]
    sizes = [math.prod(shapes[i]) for i in order]
    flat_row: Tensor | None = None
    offset = 0
    pieces = []
    for k in range(len(small)):
        shape = shapes[order[k]]
        bshape = row_broadcast_shape(shape, channel_dim)
        ids = (
            torch.arange(offset, offset + rows[k], device=device)
            .view(bshape)
            .expand(shape)
            .reshape(-1)
        )
        pieces.append(ids)
        offset += rows[k]
    if pieces:
        flat_row = torch.cat(pieces)
    row_to_tensor = torch.repeat_interleave(
        torch.arange(len(order), device=device), torch.tensor(rows, device=device)
    )
    return _Layout(
        order=order,
        n_small=len(small),
        flat_row=flat_row,
        n_small_rows=offset,
        row_to_tensor=row_to_tensor,
        row_len=torch.tensor([s / r for s, r in zip(sizes, rows)], dtype=dtype, device=device),
        numel=torch.tensor(sizes, dtype=dtype, device=device),
        templates=tuple(
            torch.empty(row_broadcast_shape(shapes[i], channel_dim), device="meta") for i in order
        ),
    )


def _stats(
    layout: _Layout, g: list[Tensor], w: list[Tensor], u: list[Tensor], channel_dim: int
) -> Tensor:
    """(4, R) row statistics of the tensors (already in layout order)."""
    dt = stats_dtype(w[0].dtype)
    parts = []
    ns = layout.n_small
    if ns:
        assert layout.flat_row is not None
        fg, fw, fu = (_flatten_dense_tensors(x[:ns]).to(dt) for x in (g, w, u))
        prods = torch.stack((fg * fw, fg * fg, fw * fw, fw * fu))
        parts.append(
            torch.zeros((4, layout.n_small_rows), dtype=dt, device=fw.device).index_add_(
                1, layout.flat_row, prods
            )
        )
    parts.extend(
        row_statistics(gi, wi, ui, channel_dim) for gi, wi, ui in zip(g[ns:], w[ns:], u[ns:])
    )
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


@dataclass(frozen=True)
class _Projection:
    order: list[int]  # layout order: small tensors first, then large
    codes: Tensor  # (T,) int8 decisions, in `order`
    factor: Tensor  # (R,) decoupled-decay factor of each row's tensor
    scale: Tensor  # (R,) radial scale s_r (0 where not projected)
    layout: _Layout


def _project(
    params: list[Tensor],
    grads: list[Tensor],
    updates: list[Tensor],
    *,
    delta: float,
    eps: float,
    mode: ProjectionMode,
    channel_dim: int,
    decay: float,
    wd_ratio: float,
) -> _Projection:
    """Decisions, per-row decay factors and radial scales of one bucket, in one batch."""
    dt = stats_dtype(params[0].dtype)
    layout = _layout(tuple(p.shape for p in params), channel_dim, params[0].device, dt)
    order = list(layout.order)
    stats = _stats(
        layout,
        [grads[i] for i in order],
        [params[i] for i in order],
        [updates[i] for i in order],
        channel_dim,
    )
    codes, scale = projection_scales(
        stats, layout.row_to_tensor, layout.row_len, layout.numel, delta=delta, eps=eps, mode=mode
    )
    ratio = torch.where(codes > NONE, torch.tensor(wd_ratio, dtype=dt, device=codes.device), 1.0)
    factor = 1.0 - decay * ratio
    return _Projection(order, codes, factor[layout.row_to_tensor], scale, layout)


def _flatten_dense_tensors(tensors: Sequence[Tensor]) -> Tensor:
    return _flatten_untyped(tensors)  # type: ignore[no-untyped-call,no-any-return]


def _views(values: Tensor, layout: _Layout, dtype: torch.dtype) -> list[Tensor]:
    return list(_unflatten_untyped(values.to(dtype), list(layout.templates)))  # type: ignore[no-untyped-call]


def _buckets(
    params: Sequence[Tensor], keys: Sequence[float | None]
) -> dict[tuple[torch.device, torch.dtype, float | None], list[int]]:
    out: dict[tuple[torch.device, torch.dtype, float | None], list[int]] = {}
    for i, (p, k) in enumerate(zip(params, keys, strict=True)):
        out.setdefault((p.device, p.dtype, k), []).append(i)
    return out


def adamp_batched(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    state_steps: Sequence[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    delta: float,
    wd_ratio: float,
    nesterov: bool,
    maximize: bool,
    projection: ProjectionMode,
    channel_dim: int,
) -> list[Tensor | None]:
    out: list[Tensor | None] = [None] * len(params)
    if not params:
        return out
    torch._foreach_add_(list(state_steps), 1.0)
    steps = torch.stack(list(state_steps)).tolist()  # CPU tensors: no device synchronisation
    for (_, _, step), idx in _buckets(params, steps).items():
        assert step is not None
        p = [params[i] for i in idx]
        g = [grads[i] for i in idx]
        m = [exp_avgs[i] for i in idx]
        v = [exp_avg_sqs[i] for i in idx]
        if maximize:
            g = list(torch._foreach_neg(g))
        torch._foreach_lerp_(m, g, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(1 - beta2**step))
        torch._foreach_add_(denom, eps)
        if nesterov:
            num = torch._foreach_mul(m, beta1)
            torch._foreach_add_(num, g, alpha=1 - beta1)
            torch._foreach_div_(num, denom)
            u = list(num)
        else:
            u = list(torch._foreach_div(m, denom))
        del denom
        step_size = lr / (1 - beta1**step)
        decay = lr * weight_decay
        _apply(out, idx, p, g, u, step_size, decay, delta=delta, eps=eps, wd_ratio=wd_ratio,
               projection=projection, channel_dim=channel_dim, project_into=None)  # fmt: skip
    return out


def _apply(
    out: list[Tensor | None],
    idx: list[int],
    p: list[Tensor],
    g: list[Tensor],
    u: list[Tensor],
    step_size: float,
    decay: float,
    *,
    delta: float,
    eps: float,
    wd_ratio: float,
    projection: ProjectionMode,
    channel_dim: int,
    project_into: list[Tensor] | None,
) -> None:
    """``w <- f w - step_size * Pi(u)`` for one bucket; records the decisions in ``out``.

    With ``project_into`` (SGDP without Nesterov: the update *is* the momentum buffer), the
    projection is written into those tensors, as the official code does, instead of being folded.
    """
    nd = [k for k, t in enumerate(p) if t.ndim > 1] if projection != "off" else []
    flat = [k for k, t in enumerate(p) if t.ndim <= 1] if nd else list(range(len(p)))
    if flat:
        pf = [p[k] for k in flat]
        if decay > 0:
            torch._foreach_mul_(pf, 1 - decay)
        torch._foreach_add_(pf, [u[k] for k in flat], alpha=-step_size)
    if not nd:
        return
    pn, gn, un = [p[k] for k in nd], [g[k] for k in nd], [u[k] for k in nd]
    proj = _project(
        pn, gn, un, delta=delta, eps=eps, mode=projection, channel_dim=channel_dim,
        decay=decay if decay > 0 else 0.0, wd_ratio=wd_ratio,
    )  # fmt: skip
    order, layout = proj.order, proj.layout
    pn = [pn[i] for i in order]
    un = [un[i] for i in order]
    dtype = pn[0].dtype
    if project_into is not None:
        targets = [project_into[nd[i]] for i in order]
        torch._foreach_addcmul_(targets, pn, _views(proj.scale, layout, dtype), value=-1.0)
        row_factor = proj.factor
    else:
        row_factor = proj.factor + step_size * proj.scale
    torch._foreach_mul_(pn, _views(row_factor, layout, dtype))
    torch._foreach_add_(pn, un, alpha=-step_size)
    for j, code in zip(order, proj.codes.unbind(0)):
        out[idx[nd[j]]] = code


def sgdp_batched(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    eps: float,
    delta: float,
    wd_ratio: float,
    maximize: bool,
    projection: ProjectionMode,
    channel_dim: int,
) -> list[Tensor | None]:
    out: list[Tensor | None] = [None] * len(params)
    if not params:
        return out
    decay = lr * weight_decay / (1 - momentum)
    for _key, idx in _buckets(params, [None] * len(params)).items():
        p = [params[i] for i in idx]
        g = [grads[i] for i in idx]
        if maximize:
            g = list(torch._foreach_neg(g))
        bufs = [momentum_buffers[i] for i in idx]
        project_into: list[Tensor] | None = None
        if momentum_buffers and all(b is not None for b in bufs):
            b = [x for x in bufs if x is not None]
            torch._foreach_mul_(b, momentum)
            torch._foreach_add_(b, g, alpha=1 - dampening)
            if nesterov:
                d = list(torch._foreach_add(g, b, alpha=momentum))
            else:
                d = b
                project_into = b
        elif all(b is None for b in bufs):
            d = list(torch._foreach_mul(g, 1 - dampening))
        else:
            raise ValueError(
                "momentum_buffers must be all tensors (momentum > 0) or all None (momentum == 0)"
            )
        _apply(out, idx, p, g, d, lr, decay, delta=delta, eps=eps, wd_ratio=wd_ratio,
               projection=projection, channel_dim=channel_dim, project_into=project_into)  # fmt: skip
    return out

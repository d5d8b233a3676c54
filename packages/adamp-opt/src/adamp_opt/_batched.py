"""The multi-tensor (``foreach=True``) AdamP and SGDP step.

Same math as the per-tensor loop in :mod:`adamp_opt.functional`, arranged for speed:

* the Adam / momentum part uses ``torch._foreach_*`` kernels over all tensors of a
  (device, dtype, step) bucket, like ``torch.optim.AdamW(foreach=True)``; for AdamP the
  denominator and the update of *small* tensors are computed on one flattened buffer;
* the detection statistics of small tensors are computed on one flattened buffer, summed per
  group of rows of equal length (or with one ``index_add_`` when ``channel_dim != 0``), those of
  large tensors with one row-wise ``vecdot`` each (no flattening copies);
* AdamP steps *large* tensors one at a time (:func:`_adamp_one`), so that their full-size
  temporaries are freed and reused instead of all being alive at once (fresh pages cost more
  than the arithmetic on the CPU);
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
    # channel_dim == 0: the small tensors are ordered by row length, so the rows of equal length
    # are one contiguous (rows, K) block of the flattened buffer: (first element, rows, K) each
    segments: tuple[tuple[int, int, int], ...] | None
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
    if channel_dim == 0:
        small.sort(key=lambda i: math.prod(shapes[i]) // shapes[i][0])  # stable
    order = (*small, *large)
    rows = [shapes[i][channel_dim] for i in order]
    sizes = [math.prod(shapes[i]) for i in order]
    flat_row: Tensor | None = None
    segments: tuple[tuple[int, int, int], ...] | None = None
    offset = 0
    if channel_dim == 0:
        segs: list[list[int]] = []
        start = 0
        for k in range(len(small)):
            row_len = sizes[k] // rows[k]
            if segs and segs[-1][2] == row_len:
                segs[-1][1] += rows[k]
            else:
                segs.append([start, rows[k], row_len])
            start += sizes[k]
            offset += rows[k]
        segments = tuple((a, b, c) for a, b, c in segs)
    else:
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
        segments=segments,
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
    parts: list[Tensor] = []
    ns = layout.n_small
    if ns:
        fg, fw, fu = (_flatten_dense_tensors(x[:ns]).to(dt) for x in (g, w, u))
        prods = torch.empty((4, fw.numel()), dtype=dt, device=fw.device)
        for k, (a, b) in enumerate(((fg, fw), (fg, fg), (fw, fw), (fw, fu))):
            torch.mul(a, b, out=prods[k])
        if layout.segments is not None:
            # rows of equal length K are contiguous: one vectorised sum per distinct K
            parts.extend(
                prods[:, start : start + rows * k].view(4, rows, k).sum(dim=2)
                for start, rows, k in layout.segments
            )
        else:
            assert layout.flat_row is not None
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
    decay = lr * weight_decay
    for (_, _, step), idx in _buckets(params, steps).items():
        assert step is not None
        step_size = lr / (1 - beta1**step)
        bias2_sqrt = math.sqrt(1 - beta2**step)
        small = []
        for i in idx:
            if params[i].numel() > SMALL_NUMEL:
                out[i] = _adamp_one(
                    params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], step_size=step_size,
                    bias2_sqrt=bias2_sqrt, beta1=beta1, beta2=beta2, eps=eps, decay=decay,
                    delta=delta, wd_ratio=wd_ratio, nesterov=nesterov, maximize=maximize,
                    projection=projection, channel_dim=channel_dim,
                )  # fmt: skip
            else:
                small.append(i)
        if not small:
            continue
        idx = small
        p = [params[i] for i in idx]
        g = [grads[i] for i in idx]
        m = [exp_avgs[i] for i in idx]
        v = [exp_avg_sqs[i] for i in idx]
        if maximize:
            g = list(torch._foreach_neg(g))
        torch._foreach_lerp_(m, g, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        # the update of the small tensors is computed on one flattened buffer: 4 vectorised
        # kernels instead of 4 launches per tensor (same elementwise arithmetic)
        denom = _flatten_dense_tensors(v)
        torch.sqrt(denom, out=denom)
        denom.div_(bias2_sqrt)
        denom.add_(eps)
        num = _flatten_dense_tensors(m)
        if nesterov:
            num.mul_(beta1)
            num.add_(_flatten_dense_tensors(g), alpha=1 - beta1)
        flat_u = num.div_(denom)
        del denom
        u = list(_unflatten_untyped(flat_u, p))  # type: ignore[no-untyped-call]
        _apply(out, idx, p, g, u, step_size, decay, delta=delta, eps=eps, wd_ratio=wd_ratio,
               projection=projection, channel_dim=channel_dim, project_into=None)  # fmt: skip
    return out


def _adamp_one(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    *,
    step_size: float,
    bias2_sqrt: float,
    beta1: float,
    beta2: float,
    eps: float,
    decay: float,
    delta: float,
    wd_ratio: float,
    nesterov: bool,
    maximize: bool,
    projection: ProjectionMode,
    channel_dim: int,
) -> Tensor | None:
    """The whole AdamP step of one large tensor, with the same kernels as the multi-tensor path.

    Large tensors are stepped one at a time: their temporaries (the denominator, which becomes
    the update in place, and the products of the statistics) are freed before the next tensor
    allocates its own, so the allocator reuses the same memory. Keeping the temporaries of all
    tensors alive at once, as ``torch._foreach_*`` does, costs fresh pages (page faults) every
    step, which on the CPU took longer than the arithmetic. The launches per tensor do not
    matter at this size.
    """
    if maximize:
        g = torch.neg(g)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2)
    v.addcmul_(g, g, value=1 - beta2)
    u = torch.sqrt(v)
    u.div_(bias2_sqrt)
    u.add_(eps)
    if nesterov:
        num = torch.mul(m, beta1)
        num.add_(g, alpha=1 - beta1)
        u = num.div_(u)
    else:
        u = torch.div(m, u, out=u)
    if p.ndim <= 1 or projection == "off":
        if decay > 0:
            p.mul_(1 - decay)
        p.add_(u, alpha=-step_size)
        return None
    proj = _project(
        [p], [g], [u], delta=delta, eps=eps, mode=projection, channel_dim=channel_dim,
        decay=decay if decay > 0 else 0.0, wd_ratio=wd_ratio,
    )  # fmt: skip
    row_factor = proj.factor + step_size * proj.scale
    p.mul_(_views(row_factor, proj.layout, p.dtype)[0])
    p.add_(u, alpha=-step_size)
    return proj.codes[0]


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

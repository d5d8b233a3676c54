"""The multi-tensor (``foreach=True``) AdamP and SGDP step.

Same math as the per-tensor loop in :mod:`adamp_opt.functional`, arranged for speed:

* AdamP steps the *small* tensors of a (device, dtype, step) bucket entirely on flat buffers
  (:func:`_adamp_flat`): persistent flat moments whose views are the state entries
  (:func:`_flat_state`), one ``cat`` of the gradients, a scratch copy of the weights, one
  vectorised kernel per elementwise op, and one ``torch._foreach_copy_`` back to the weights;
* SGDP uses ``torch._foreach_*`` kernels over all tensors of a bucket, like
  ``torch.optim.SGD(foreach=True)``;
* the detection statistics of small tensors are computed on one flattened buffer, summed per
  group of rows of equal length (or with one ``index_add_`` when ``channel_dim != 0``), those of
  large tensors with one row-wise ``vecdot`` each (no flattening copies);
* on the CPU, AdamP steps *large* tensors one at a time (:func:`_adamp_one`), with their
  temporaries in one scratch buffer kept across steps (fresh pages cost more than the arithmetic
  on the CPU); on other devices (GPUs), where every op is a kernel launch of several
  microseconds, *all* tensors take the flat path, in buckets of at most :data:`BUCKET_NUMEL`
  elements (:func:`_chunks`), so that the temporaries stay bounded by the bucket size;
* the decisions of all tensors are one vectorised :func:`~adamp_opt.functional.projection_scales`
  call, with no host synchronisation;
* the projection and the decoupled weight decay are folded into one per-row factor,
  ``w <- (f + a s_r) w - a u`` with ``f`` the decay factor and ``a`` the step size, which equals
  the official ``w <- f w - a (u - s_r w)`` and saves a full pass over the weights.
"""

from __future__ import annotations

import functools
import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

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

#: on non-CPU devices, the flat path steps the tensors in buckets of at most this many elements
#: (a larger tensor is a bucket of its own): the temporaries of a bucket (flat gradients, update,
#: the ``(4, N)`` products of the statistics) are about 7 times its size in elements
BUCKET_NUMEL = 2**24

#: route the tensors as on a non-CPU device even on the CPU (tests; see :func:`_device_routing`)
_DEVICE_ROUTING = False

#: with device routing, a bucket with more distinct row lengths than this scales its rows with
#: one gathered factor per element (a few launches) instead of one ``mul_`` per row length
_MAX_ROW_BLOCKS = 4


def _device_routing(device: torch.device, channel_dim: int) -> bool:
    """Whether every tensor takes the bucketed flat path (else: large tensors one at a time).

    Non-CPU devices only (on the CPU the per-tensor loop over large tensors was faster, see the
    README), and only for ``channel_dim == 0``, whose rows are contiguous in the flat buffers
    (other channel dims would need an int64 row index per element).
    """
    return (_DEVICE_ROUTING or device.type != "cpu") and channel_dim == 0


def _chunks(idx: list[int], params: Sequence[Tensor], bound: int) -> list[list[int]]:
    """``idx`` cut, in order, into runs of at most ``bound`` elements (larger tensors alone)."""
    out: list[list[int]] = []
    size = 0
    for i in idx:
        n = params[i].numel()
        if not out or size + n > bound:
            out.append([])
            size = 0
        out[-1].append(i)
        size += n
    return out


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
    # channel_dim == 0: (R,) int64 length of every row (expands a per-row value to the elements)
    row_repeats: Tensor | None = None


@functools.lru_cache(maxsize=1024)
def _layout(
    shapes: tuple[torch.Size, ...],
    channel_dim: int,
    device: torch.device,
    dtype: torch.dtype,
    all_small: bool = False,
) -> _Layout:
    limit = math.inf if all_small else SMALL_NUMEL
    small = [i for i, s in enumerate(shapes) if math.prod(s) <= limit]
    large = [i for i, s in enumerate(shapes) if math.prod(s) > limit]
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
        row_repeats=(
            torch.tensor([s // r for s, r in zip(sizes, rows) for _ in range(r)], device=device)
            if channel_dim == 0
            else None
        ),
    )


@dataclass(frozen=True)
class _FlatLayout:
    """Order of the small tensors of one bucket in the flattened buffers (cached per shapes).

    Tensors that are never projected (``ndim <= 1``, or every tensor with ``projection="off"``)
    come first; the projectable ones follow in the order of their :class:`_Layout`, so that their
    rows of equal length are contiguous.
    """

    order: tuple[int, ...]  # indices into the input list, in flattened order
    n_plain: int  # number of never-projected tensors (first in `order`)
    plain_numel: int  # their elements: the projectable region starts here
    nd: _Layout | None  # layout of the projectable tensors (None when there are none)
    # channel_dim == 0: (first element in the projectable region, first row, rows, K)
    blocks: tuple[tuple[int, int, int, int], ...]
    templates: tuple[Tensor, ...]  # meta tensors with each tensor's shape, in `order`


@functools.lru_cache(maxsize=1024)
def _flat_layout(
    shapes: tuple[torch.Size, ...],
    project: bool,
    channel_dim: int,
    device: torch.device,
    dtype: torch.dtype,
) -> _FlatLayout:
    plain = [i for i, s in enumerate(shapes) if not project or len(s) <= 1]
    nd_idx = [i for i, s in enumerate(shapes) if project and len(s) > 1]
    nd: _Layout | None = None
    order = list(plain)
    blocks: list[tuple[int, int, int, int]] = []
    if nd_idx:
        nd = _layout(tuple(shapes[i] for i in nd_idx), channel_dim, device, dtype, all_small=True)
        order += [nd_idx[k] for k in nd.order]
        row = 0
        for start, rows, k in nd.segments or ():
            blocks.append((start, row, rows, k))
            row += rows
    return _FlatLayout(
        order=tuple(order),
        n_plain=len(plain),
        plain_numel=sum(math.prod(shapes[i]) for i in plain),
        nd=nd,
        blocks=tuple(blocks),
        templates=tuple(torch.empty(shapes[i], device="meta") for i in order),
    )


def _segment_stats(layout: _Layout, fg: Tensor, fw: Tensor, fu: Tensor) -> Tensor:
    """(4, rows) row statistics of flattened small tensors (in layout order, stats dtype)."""
    prods = torch.empty((4, fw.numel()), dtype=fw.dtype, device=fw.device)
    for k, (a, b) in enumerate(((fg, fw), (fg, fg), (fw, fw), (fw, fu))):
        torch.mul(a, b, out=prods[k])
    if layout.segments is not None:
        # rows of equal length K are contiguous: one vectorised sum per distinct K
        parts = [
            prods[:, start : start + rows * k].view(4, rows, k).sum(dim=2)
            for start, rows, k in layout.segments
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    assert layout.flat_row is not None
    return torch.zeros((4, layout.n_small_rows), dtype=fw.dtype, device=fw.device).index_add_(
        1, layout.flat_row, prods
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
        parts.append(_segment_stats(layout, fg, fw, fu))
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
    stats: Tensor | None = None,
) -> _Projection:
    """Decisions, per-row decay factors and radial scales of one bucket, in one batch.

    ``stats`` (one tensor only): its row statistics, when the caller computed them.
    """
    dt = stats_dtype(params[0].dtype)
    layout = _layout(tuple(p.shape for p in params), channel_dim, params[0].device, dt)
    order = list(layout.order)
    if stats is None:
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
    ratio = torch.where(codes > NONE, torch.full_like(codes, wd_ratio, dtype=dt), 1.0)
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
    states: Sequence[MutableMapping[str, Any]] | None = None,
    flat_cache: dict[Any, Any] | None = None,
) -> list[Tensor | None]:
    """The AdamP step of :func:`adamp_opt.functional.adamp` with ``foreach=True``.

    With ``states`` (the parameters' state dicts, aligned with ``params``) and ``flat_cache``
    (a dict the caller keeps across steps), the first and second moments of the small tensors
    are kept as views into one persistent flat buffer each (:func:`_flat_state`), and the
    ``"exp_avg"`` / ``"exp_avg_sq"`` entries of ``states`` are replaced by those views when the
    buffers are (re)built. Without them the moments are flattened and copied back every step.
    """
    out: list[Tensor | None] = [None] * len(params)
    if not params:
        return out
    torch._foreach_add_(list(state_steps), 1.0)
    steps = torch.stack(list(state_steps)).tolist()  # CPU tensors: no device synchronisation
    decay = lr * weight_decay
    scratch: dict[tuple[torch.device, torch.dtype], Tensor] | None = None
    if flat_cache is not None:
        scratch = flat_cache.setdefault("scratch", {})
    used: set[Any] = set()  # keys of the persistent flat buffers used in this step
    for (device, _, step), idx in _buckets(params, steps).items():
        assert step is not None
        step_size = lr / (1 - beta1**step)
        bias2_sqrt = math.sqrt(1 - beta2**step)
        flat_kw: dict[str, Any] = {
            "states": states, "cache": flat_cache, "used": used, "step_size": step_size,
            "bias2_sqrt": bias2_sqrt, "beta1": beta1, "beta2": beta2, "eps": eps, "decay": decay,
            "delta": delta, "wd_ratio": wd_ratio, "nesterov": nesterov, "maximize": maximize,
            "projection": projection, "channel_dim": channel_dim,
        }  # fmt: skip
        if _device_routing(device, channel_dim):
            for chunk in _chunks(idx, params, BUCKET_NUMEL):
                _adamp_flat(
                    out, chunk, params, grads, exp_avgs, exp_avg_sqs, gather_rows=True, **flat_kw
                )
            continue
        small = []
        for i in idx:
            if params[i].numel() > SMALL_NUMEL:
                out[i] = _adamp_one(
                    params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], step_size=step_size,
                    bias2_sqrt=bias2_sqrt, beta1=beta1, beta2=beta2, eps=eps, decay=decay,
                    delta=delta, wd_ratio=wd_ratio, nesterov=nesterov, maximize=maximize,
                    projection=projection, channel_dim=channel_dim,
                    scratch=_scratch(scratch, params[i]),
                )  # fmt: skip
            else:
                small.append(i)
        if small:
            _adamp_flat(out, small, params, grads, exp_avgs, exp_avg_sqs, **flat_kw)
    if flat_cache is not None:
        _drop_unused(flat_cache, used)
    return out


@dataclass
class _FlatState:
    """Persistent flat moment buffers of one bucket; the state dicts hold views into them."""

    key: frozenset[int]  # ids of the parameters' state dicts (to drop stale entries)
    exp_avg: Tensor
    exp_avg_sq: Tensor
    exp_avg_views: list[Tensor]
    exp_avg_sq_views: list[Tensor]
    # the flattened weights: a view into the shared scratch buffer ``weight_base`` (one per
    # device and dtype, as large as the largest bucket), and its views (no unflattening per step)
    weight_base: Tensor | None = None
    weight: Tensor | None = None
    weight_views: list[Tensor] | None = None


#: at most this many persistent flat buffers *not used in the current step* are kept per cache
#: (those used in the step, one per bucket, are never dropped: no rebuilding with many buckets)
_MAX_FLAT_STATES = 8


def _drop_unused(cache: dict[Any, Any], used: set[Any]) -> None:
    """Drop the oldest flat buffers not used in this step beyond :data:`_MAX_FLAT_STATES`."""
    unused = [k for k, e in cache.items() if isinstance(e, _FlatState) and k not in used]
    for k in unused[: max(0, len(unused) - _MAX_FLAT_STATES)]:
        del cache[k]


def _flat_weights(cache: dict[Any, Any], entry: _FlatState, templates: Sequence[Tensor]) -> None:
    """Point ``entry.weight`` / ``weight_views`` into the shared weight scratch buffer."""
    n = entry.exp_avg.numel()
    bufs: dict[tuple[torch.device, torch.dtype], Tensor] = cache.setdefault("weights", {})
    key = (entry.exp_avg.device, entry.exp_avg.dtype)
    buf = bufs.get(key)
    if buf is None or buf.numel() < n:
        buf = bufs[key] = torch.empty(n, dtype=entry.exp_avg.dtype, device=entry.exp_avg.device)
    if entry.weight_base is not buf:
        entry.weight_base = buf
        entry.weight = buf[:n]
        entry.weight_views = list(_unflatten_untyped(entry.weight, list(templates)))  # type: ignore[no-untyped-call]


def _flat_copy(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors flattened into one new buffer (never an alias of an input)."""
    flat = _flatten_dense_tensors(tensors)
    return flat.clone() if len(tensors) == 1 else flat


def _flat_state(
    cache: dict[Any, Any] | None,
    states: Sequence[MutableMapping[str, Any]] | None,
    sel: list[int],
    m: list[Tensor],
    v: list[Tensor],
    templates: Sequence[Tensor],
    used: set[Any] | None = None,
) -> tuple[Tensor, Tensor, _FlatState | None]:
    """Flat first and second moments of the tensors ``sel`` (already in flattened order).

    Returns ``(exp_avg, exp_avg_sq, entry)``. With an ``entry`` (persistent buffers) the state
    dicts hold views into the returned buffers, so in-place updates of the buffers are the
    update of the state; without (``None``) they are fresh copies that the caller must copy back.

    The buffers are reused while every state tensor is *the same object* as the view handed
    out when they were built (an identity check, no data access). Anything else (the first
    step, ``load_state_dict``, a state entry replaced by the user, a parameter gaining or losing
    its gradient) rebuilds them from the current state values, which are copied. Entries that
    share a parameter with a rebuilt one are dropped at once; ``used`` collects the keys used in
    this step (the others are dropped by :func:`_drop_unused` beyond a few).
    """
    if cache is None or states is None:
        return _flatten_dense_tensors(m), _flatten_dense_tensors(v), None
    key = (m[0].device, m[0].dtype, tuple(sel))
    if used is not None:
        used.add(key)
    entry: _FlatState | None = cache.get(key)
    if (
        entry is not None
        and len(entry.exp_avg_views) == len(m)
        and all(a is b for a, b in zip(m, entry.exp_avg_views))
        and all(a is b for a, b in zip(v, entry.exp_avg_sq_views))
    ):
        _flat_weights(cache, entry, templates)
        return entry.exp_avg, entry.exp_avg_sq, entry
    fm, fv = _flat_copy(m), _flat_copy(v)
    entry = _FlatState(
        key=frozenset(id(states[i]) for i in sel),
        exp_avg=fm,
        exp_avg_sq=fv,
        exp_avg_views=list(_unflatten_untyped(fm, list(templates))),  # type: ignore[no-untyped-call]
        exp_avg_sq_views=list(_unflatten_untyped(fv, list(templates))),  # type: ignore[no-untyped-call]
    )
    _flat_weights(cache, entry, templates)
    for i, mv, vv in zip(sel, entry.exp_avg_views, entry.exp_avg_sq_views, strict=True):
        states[i]["exp_avg"] = mv
        states[i]["exp_avg_sq"] = vv
    # entries that share a parameter with this one are stale now (their buffers are freed once
    # no state refers to them any more)
    for k in [
        k for k, e in cache.items() if isinstance(e, _FlatState) and not e.key.isdisjoint(entry.key)
    ]:
        del cache[k]
    cache[key] = entry
    return fm, fv, entry


def _scratch(
    cache: dict[tuple[torch.device, torch.dtype], Tensor] | None, like: Tensor
) -> Tensor | None:
    """A reusable buffer of ``2 * like.numel()`` elements for :func:`_adamp_one` (grown as needed)."""
    if cache is None:
        return None
    key = (like.device, like.dtype)
    buf = cache.get(key)
    if buf is None or buf.numel() < 2 * like.numel():
        buf = cache[key] = torch.empty(2 * like.numel(), dtype=like.dtype, device=like.device)
    return buf


def _adamp_flat(
    out: list[Tensor | None],
    idx: list[int],
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    *,
    states: Sequence[MutableMapping[str, Any]] | None,
    cache: dict[Any, Any] | None,
    used: set[Any] | None = None,
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
    gather_rows: bool = False,
) -> None:
    """The whole AdamP step of the small tensors ``idx`` of one bucket on flattened buffers.

    Every elementwise operation runs once over all the tensors (one vectorised kernel instead
    of one launch per tensor): the moments (persistent flat buffers, see :func:`_flat_state`),
    the update, the statistics, and the final ``w <- (f + a s_r) w - a u`` on a flattened copy
    of the weights, which goes back with one ``torch._foreach_copy_``. Never-projected tensors
    (``ndim <= 1``) share the buffers, with the plain factor ``f = 1 - decay``. A bucket of one
    contiguous tensor (a large tensor on a GPU) is updated in place, without the weight copies.
    With ``gather_rows`` (device routing) and more than :data:`_MAX_ROW_BLOCKS` row lengths, the
    row factors are expanded to the elements (``repeat_interleave`` with its ``output_size``: no
    synchronisation) and applied with one ``mul_``, instead of one ``mul_`` per row length.
    """
    p0 = params[idx[0]]
    lay = _flat_layout(
        tuple(params[i].shape for i in idx), projection != "off", channel_dim, p0.device,
        stats_dtype(p0.dtype),
    )  # fmt: skip
    sel = [idx[k] for k in lay.order]
    p = [params[i] for i in sel]
    m = [exp_avgs[i] for i in sel]
    v = [exp_avg_sqs[i] for i in sel]
    fm, fv, entry = _flat_state(cache, states, sel, m, v, lay.templates, used)
    fg = _flatten_dense_tensors([grads[i] for i in sel])
    if maximize:
        fg = torch.neg(fg)
    fm.lerp_(fg, 1 - beta1)
    fv.mul_(beta2)
    fv.addcmul_(fg, fg, value=1 - beta2)
    if entry is None:
        torch._foreach_copy_(m, _unflatten_untyped(fm, m))  # type: ignore[no-untyped-call]
        torch._foreach_copy_(v, _unflatten_untyped(fv, v))  # type: ignore[no-untyped-call]
    fu = torch.sqrt(fv)
    fu.div_(bias2_sqrt)
    fu.add_(eps)
    if nesterov:
        num = torch.mul(fm, beta1)
        num.add_(fg, alpha=1 - beta1)
        fu = num.div_(fu)
    else:
        fu = torch.div(fm, fu, out=fu)
    in_place = len(p) == 1 and p[0].is_contiguous()
    if in_place:
        fw, w_views = p[0].view(-1), p
    elif entry is not None:
        assert entry.weight is not None and entry.weight_views is not None
        fw, w_views = entry.weight, entry.weight_views
        torch._foreach_copy_(w_views, p)
    else:
        fw = _flat_copy(p)
        w_views = list(_unflatten_untyped(fw, lay.templates))  # type: ignore[no-untyped-call]
    a = lay.plain_numel
    if a and decay > 0:
        fw[:a].mul_(1 - decay)
    nd = lay.nd
    codes: Tensor | None = None
    if nd is not None:
        dt = stats_dtype(fw.dtype)
        gn, wn, un = fg[a:], fw[a:], fu[a:]
        stats = _segment_stats(nd, gn.to(dt), wn.to(dt), un.to(dt))
        codes, scale = projection_scales(
            stats, nd.row_to_tensor, nd.row_len, nd.numel, delta=delta, eps=eps, mode=projection
        )
        ratio = torch.where(codes > NONE, torch.full_like(codes, wd_ratio, dtype=dt), 1.0)
        factor = 1.0 - (decay if decay > 0 else 0.0) * ratio
        row_factor = (factor[nd.row_to_tensor] + step_size * scale).to(fw.dtype)
        if gather_rows and nd.row_repeats is not None and len(lay.blocks) > _MAX_ROW_BLOCKS:
            wn.mul_(row_factor.repeat_interleave(nd.row_repeats, output_size=wn.numel()))
        elif nd.segments is not None:
            for start, row, rows, k in lay.blocks:
                wn[start : start + rows * k].view(rows, k).mul_(row_factor[row : row + rows, None])
        else:
            assert nd.flat_row is not None
            wn.mul_(row_factor[nd.flat_row])
    fw.add_(fu, alpha=-step_size)
    if not in_place:
        torch._foreach_copy_(p, w_views)
    if codes is not None:
        for i, code in zip(sel[lay.n_plain :], codes.unbind(0), strict=True):
            out[i] = code


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
    scratch: Tensor | None = None,
) -> Tensor | None:
    """The whole AdamP step of one large tensor, with the same kernels as the multi-tensor path.

    Large tensors are stepped one at a time: their temporaries (the denominator, which becomes
    the update in place, and the products of the statistics) are freed before the next tensor
    allocates its own, so the allocator reuses the same memory. Keeping the temporaries of all
    tensors alive at once, as ``torch._foreach_*`` does, costs fresh pages (page faults) every
    step, which on the CPU took longer than the arithmetic. The launches per tensor do not
    matter at this size.

    With ``scratch`` (at least ``2 * numel`` elements of the parameter's dtype, kept by the
    caller across steps) the temporaries are written into it instead (``out=``), so no memory
    is allocated at all: the same kernels on the same values.
    """
    n = p.numel()
    slots = (
        (scratch[:n].view(p.shape), scratch[n : 2 * n].view(p.shape))
        if scratch is not None
        else None
    )
    if maximize:
        g = torch.neg(g)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2)
    v.addcmul_(g, g, value=1 - beta2)
    u = torch.sqrt(v) if slots is None else torch.sqrt(v, out=slots[0])
    u.div_(bias2_sqrt)
    u.add_(eps)
    free = slots[1] if slots is not None else None  # the slot the update does not occupy
    if nesterov:
        num = torch.mul(m, beta1) if slots is None else torch.mul(m, beta1, out=slots[1])
        num.add_(g, alpha=1 - beta1)
        u, free = num.div_(u), (slots[0] if slots is not None else None)
    else:
        u = torch.div(m, u, out=u)
    if p.ndim <= 1 or projection == "off":
        if decay > 0:
            p.mul_(1 - decay)
        p.add_(u, alpha=-step_size)
        return None
    stats: Tensor | None = None
    plain_rows = channel_dim == 0 and stats_dtype(p.dtype) == p.dtype
    if free is not None and plain_rows and p.is_contiguous() and g.is_contiguous():
        # row_statistics without its four full-size product temporaries (same kernels)
        rows = p.shape[0]
        stats = torch.empty((4, rows), dtype=p.dtype, device=p.device)
        for k, (a, b) in enumerate(((g, p), (g, g), (p, p), (p, u))):
            torch.mul(a, b, out=free)
            torch.sum(free.view(rows, n // rows), dim=1, out=stats[k])
    proj = _project(
        [p], [g], [u], delta=delta, eps=eps, mode=projection, channel_dim=channel_dim,
        decay=decay if decay > 0 else 0.0, wd_ratio=wd_ratio, stats=stats,
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

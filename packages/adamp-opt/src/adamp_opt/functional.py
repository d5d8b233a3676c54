r"""AdamP and SGDP as plain functions on lists of tensors (Heo et al., ICLR 2021, arXiv:2006.08217).

A weight :math:`w` is *scale-invariant* when the loss does not change if :math:`w` is scaled,
e.g. a convolution or linear weight followed by BatchNorm (per output channel) or LayerNorm (per
tensor). Then :math:`\nabla f(w) \perp w`, and every gradient step with momentum grows
:math:`\|w\|`, which shrinks the effective (angular) step :math:`\eta / \|w\|^2`. AdamP and SGDP
detect such weights and remove the radial component of the update.

Detection, for a parameter with ``ndim > 1`` and the raw gradient :math:`g` (paper eq. 12,
official ``_projection``). First the *channel view*: rows :math:`w_r, g_r` are the slices along
``channel_dim`` (dim 0 by default, the output channel), each of length :math:`K`:

.. math::

    \cos_r = \frac{|g_r \cdot w_r|}{\max(\|g_r\|, \epsilon)\,\max(\|w_r\|, \epsilon)}, \qquad
    \text{channel-invariant} \iff \max_r \cos_r < \delta / \sqrt{K}.

If that fails, the *layer view* tests the whole tensor the same way against
:math:`\delta/\sqrt{\mathrm{numel}}`. When a view passes, the update direction :math:`u` loses
its radial part in that view and the weight decay is multiplied by ``wd_ratio``:

.. math::

    u_r \leftarrow u_r - \frac{w_r \cdot u_r}{(\|w_r\| + \epsilon)^2}\, w_r .

AdamP (official ``adamp.AdamP``; decoupled decay; :math:`\epsilon` outside the bias-corrected
square root, as in ``torch.optim.Adam``):

.. math::

    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
    u_t = \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
          \;\big(\text{nesterov: } \tfrac{\beta_1 m_t + (1-\beta_1) g_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t}
          + \epsilon}\big), \\
    w_t = w_{t-1}\,(1 - \eta\lambda\rho_t) - \frac{\eta}{1-\beta_1^t}\, \Pi(u_t),

with :math:`\rho_t = ` ``wd_ratio`` when projected and 1 otherwise. SGDP (official ``adamp.SGDP``):

.. math::

    b_t = \mu b_{t-1} + (1-\text{dampening})\, g_t, \quad
    d_t = b_t \;(\text{nesterov: } g_t + \mu b_t), \\
    w_t = w_{t-1}\,\big(1 - \eta\lambda\rho_t/(1-\mu)\big) - \eta\, \Pi(d_t).

Without Nesterov the official SGDP projects the momentum buffer itself (``d_t`` *is* ``b_t``), so
the stored buffer keeps no radial part; this module does the same.

Differences from the official code (listed in the README): the decisions are computed as tensors
(no ``if`` on a device value, so there is no host synchronisation and ``torch.compile`` sees no
data-dependent branch), ``reshape`` instead of ``view`` (channels_last works), an all-zero gradient
or weight is *not* reported as scale-invariant in ``"auto"`` mode, and ``projection`` /
``channel_dim`` choose or force the view.

All functions here are stateless: they update the given tensors in place and return the
per-parameter decisions (:data:`NONE`, :data:`CHANNEL`, :data:`LAYER`) as 0-d tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "CHANNEL",
    "DECISION_NAMES",
    "LAYER",
    "NONE",
    "PROJECTION_MODES",
    "ProjectionMode",
    "adamp",
    "projection_scales",
    "row_broadcast_shape",
    "row_statistics",
    "sgdp",
]

ProjectionMode = Literal["auto", "channel", "layer", "off"]
#: Values of the per-group ``projection`` option: detect (official), force a view, or never project.
PROJECTION_MODES: tuple[str, ...] = ("auto", "channel", "layer", "off")
NONE, CHANNEL, LAYER = 0, 1, 2
#: Names of the decision codes stored in ``optimizer.state[p]["projection"]``.
DECISION_NAMES: tuple[str, ...] = ("none", "channel", "layer")

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the detection statistics are computed in: float32 for half types, else ``dtype``."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def row_broadcast_shape(shape: Sequence[int], channel_dim: int) -> tuple[int, ...]:
    """Shape ``(1, .., C, .., 1)`` that broadcasts one value per channel-view row over ``shape``."""
    return tuple(n if i == channel_dim else 1 for i, n in enumerate(shape))


def _rows(x: Tensor, channel_dim: int) -> Tensor:
    if channel_dim != 0:
        x = x.movedim(channel_dim, 0)
    return x.reshape(x.shape[0], -1)  # reshape, not view: channels_last weights work


def row_statistics(grad: Tensor, param: Tensor, update: Tensor, channel_dim: int = 0) -> Tensor:
    r"""Per channel-view row :math:`r`: :math:`(g_r\cdot w_r,\ \|g_r\|^2,\ \|w_r\|^2,\ w_r\cdot u_r)`.

    Returns a ``(4, C)`` tensor (float32 for half-precision inputs) where ``C`` is the size of
    ``channel_dim``. Every quantity the detection and the projection need is a function of these
    row sums (the layer view uses their column sums), so each tensor is read once per statistic.
    """
    g, w, u = (_rows(t, channel_dim) for t in (grad, param, update))
    dt = stats_dtype(w.dtype)
    if dt != w.dtype:
        g, w, u = g.to(dt), w.to(dt), u.to(dt)
    vd = torch.linalg.vecdot
    return torch.stack((vd(g, w, dim=1), vd(g, g, dim=1), vd(w, w, dim=1), vd(w, u, dim=1)))


def projection_scales(
    stats: Tensor,
    row_to_tensor: Tensor,
    row_len: Tensor,
    numel: Tensor,
    *,
    delta: float,
    eps: float,
    mode: ProjectionMode = "auto",
) -> tuple[Tensor, Tensor]:
    r"""Decide per tensor whether (and in which view) to project, and the radial scale per row.

    All tensors of a batch are handled at once and without host synchronisation: decisions are
    built with ``torch.where``, never with a Python ``if`` on a tensor value.

    Args:
        stats: ``(4, R)`` row statistics of all tensors, concatenated (:func:`row_statistics`).
        row_to_tensor: ``(R,)`` int64, the tensor index of each row.
        row_len: ``(T,)`` row length :math:`K` of each tensor (``numel / C``).
        numel: ``(T,)`` number of elements of each tensor.
        delta: the threshold :math:`\delta`; a view is invariant when its largest
            :math:`|\cos|` is below :math:`\delta/\sqrt{\text{dim}}`.
        eps: the :math:`\epsilon` of the cosine norms and of the projection's normalisation.
        mode: ``"auto"`` tests channel view then layer view (official); ``"channel"`` /
            ``"layer"`` force that projection; ``"off"`` never projects.

    Returns:
        ``(decision, scale)``: ``decision`` is ``(T,)`` int8 with :data:`NONE`, :data:`CHANNEL`
        or :data:`LAYER`; ``scale`` is ``(R,)`` with :math:`s_r` such that the projected update
        is :math:`u_r - s_r w_r` (zero for rows that are not projected).
    """
    n = int(numel.shape[0])
    gw, gg, ww, wu = stats.unbind(0)
    totals = torch.zeros((4, n), dtype=stats.dtype, device=stats.device).index_add_(
        1, row_to_tensor, stats
    )
    t_gw, t_gg, t_ww, t_wu = totals.unbind(0)
    codes = torch.zeros(n, dtype=torch.int8, device=stats.device)
    if mode == "auto":
        cos_rows = gw.abs() / (gg.sqrt().clamp_min(eps) * ww.sqrt().clamp_min(eps))
        max_cos = torch.zeros(n, dtype=stats.dtype, device=stats.device).scatter_reduce(
            0, row_to_tensor, cos_rows, reduce="amax", include_self=False
        )
        channel_ok = max_cos < delta / row_len.sqrt()
        cos_layer = t_gw.abs() / (t_gg.sqrt().clamp_min(eps) * t_ww.sqrt().clamp_min(eps))
        layer_ok = cos_layer < delta / numel.sqrt()
        # an all-zero gradient or weight carries no evidence of invariance (official: projected)
        informative = (t_gg > 0) & (t_ww > 0)
        codes = torch.where(
            informative & channel_ok, CHANNEL, torch.where(informative & layer_ok, LAYER, codes)
        )
        codes = codes.to(torch.int8)
    elif mode == "channel":
        codes = codes.fill_(CHANNEL)
    elif mode == "layer":
        codes = codes.fill_(LAYER)
    elif mode != "off":
        raise ValueError(f"projection must be one of {PROJECTION_MODES}, got {mode!r}")
    row_code = codes[row_to_tensor]
    den_rows = (ww.sqrt() + eps).square()
    s_channel = torch.where(den_rows > 0, wu / den_rows, 0.0)
    den_layer = (t_ww.sqrt() + eps).square()
    s_layer = torch.where(den_layer > 0, t_wu / den_layer, 0.0)[row_to_tensor]
    scale = torch.where(
        row_code == CHANNEL, s_channel, torch.where(row_code == LAYER, s_layer, 0.0)
    )
    return codes, scale


def _decide_one(
    grad: Tensor,
    param: Tensor,
    update: Tensor,
    *,
    delta: float,
    eps: float,
    mode: ProjectionMode,
    channel_dim: int,
) -> tuple[Tensor, Tensor]:
    """Decision (0-d int8) and per-row scale shaped to broadcast over ``param``."""
    stats = row_statistics(grad, param, update, channel_dim)
    c = stats.shape[1]
    dt = stats.dtype
    codes, scale = projection_scales(
        stats,
        torch.zeros(c, dtype=torch.long, device=stats.device),
        # torch.full, not torch.tensor: no host-to-device copy (which would synchronise)
        torch.full((1,), param.numel() / c, dtype=dt, device=stats.device),
        torch.full((1,), float(param.numel()), dtype=dt, device=stats.device),
        delta=delta,
        eps=eps,
        mode=mode,
    )
    return codes[0], scale.to(param.dtype).view(row_broadcast_shape(param.shape, channel_dim))


def _wd_factor(code: Tensor, *, decay: float, wd_ratio: float, dtype: torch.dtype) -> Tensor:
    """``1 - decay * (wd_ratio if projected else 1)`` as a tensor (no host sync)."""
    ratio = torch.where(code > NONE, torch.full_like(code, wd_ratio, dtype=dtype), 1.0)
    return 1.0 - decay * ratio


def _projectable(param: Tensor, mode: ProjectionMode) -> bool:
    return param.ndim > 1 and mode != "off"


def adamp(
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
    maximize: bool = False,
    projection: ProjectionMode = "auto",
    channel_dim: int = 0,
    foreach: bool = True,
) -> list[Tensor | None]:
    """One AdamP step on the given tensors (updated in place); the module docstring has the math.

    ``state_steps`` are 0-d float tensors on the CPU (as in ``torch.optim.Adam``), incremented
    here. Returns the decision per parameter (0-d int8 tensor; ``None`` for parameters that are
    never projected: ``ndim <= 1`` or ``projection="off"``).
    """
    if foreach:
        from adamp_opt._batched import adamp_batched

        return adamp_batched(
            params, grads, exp_avgs, exp_avg_sqs, state_steps, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
            weight_decay=weight_decay, delta=delta, wd_ratio=wd_ratio, nesterov=nesterov, maximize=maximize,
            projection=projection, channel_dim=channel_dim,
        )  # fmt: skip
    out: list[Tensor | None] = []
    for p, g, m, v, step_t in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps, strict=True):
        if maximize:
            g = -g
        step_t += 1
        step = float(step_t.item())  # a CPU tensor: no device synchronisation
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
        step_size = lr / (1 - beta1**step)
        num = m.mul(beta1).add_(g, alpha=1 - beta1) if nesterov else m
        u = num / denom
        if _projectable(p, projection):
            code, scale = _decide_one(
                g, p, u, delta=delta, eps=eps, mode=projection, channel_dim=channel_dim
            )
            u.sub_(p * scale)
            if weight_decay > 0:
                p.mul_(_wd_factor(code, decay=lr * weight_decay, wd_ratio=wd_ratio, dtype=p.dtype))
            out.append(code)
        else:
            if weight_decay > 0:
                p.mul_(1 - lr * weight_decay)
            out.append(None)
        p.add_(u, alpha=-step_size)
    return out


def sgdp(
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
    maximize: bool = False,
    projection: ProjectionMode = "auto",
    channel_dim: int = 0,
    foreach: bool = True,
) -> list[Tensor | None]:
    """One SGDP step on the given tensors (updated in place); the module docstring has the math.

    ``momentum_buffers`` holds one buffer per parameter when ``momentum > 0`` (updated in place,
    zeros on the first step as in the official code) and ``None`` entries when ``momentum == 0``.
    Returns the decision per parameter as :func:`adamp` does.
    """
    if foreach:
        from adamp_opt._batched import sgdp_batched

        return sgdp_batched(
            params, grads, momentum_buffers, lr=lr, momentum=momentum, dampening=dampening,
            weight_decay=weight_decay, nesterov=nesterov, eps=eps, delta=delta, wd_ratio=wd_ratio,
            maximize=maximize, projection=projection, channel_dim=channel_dim,
        )  # fmt: skip
    out: list[Tensor | None] = []
    decay = lr * weight_decay / (1 - momentum)
    for p, g, buf in zip(params, grads, momentum_buffers, strict=True):
        if maximize:
            g = -g
        if buf is None:
            d = g.mul(1 - dampening)
        else:
            buf.mul_(momentum).add_(g, alpha=1 - dampening)
            d = (
                g.add(buf, alpha=momentum) if nesterov else buf
            )  # official: d_p is the buffer itself
        if _projectable(p, projection):
            code, scale = _decide_one(
                g, p, d, delta=delta, eps=eps, mode=projection, channel_dim=channel_dim
            )
            d.sub_(p * scale)
            if weight_decay > 0:
                p.mul_(_wd_factor(code, decay=decay, wd_ratio=wd_ratio, dtype=p.dtype))
            out.append(code)
        else:
            if weight_decay > 0:
                p.mul_(1 - decay)
            out.append(None)
        p.add_(d, alpha=-lr)
    return out

"""The APG combine step as one compiled kernel (``apg(..., fused=True)``).

Eager torch needs about seven passes over memory for one APG step (difference, momentum, three
per-sample reductions, recombination), against two for CFG. Here the same arithmetic is written
once over ``(rows, features)`` views and handed to :func:`torch.compile`, which fuses it into a
reduction pass (``<m, m>``, ``<m, c>``, ``<c, c>`` with ``m`` recomputed on the fly) and one
element-wise pass that writes the guided prediction and the new momentum state: C++/OpenMP on the
CPU, Triton on CUDA.

With :math:`m = D_c - D_u + \\beta m_{t-1}`, the per-row weights are

.. math::

    b_m = s \\cdot \\min\\bigl(1, r / \\lVert m \\rVert\\bigr), \\qquad
    b_c = -b_m (1 - \\eta) \\frac{\\langle m, D_c \\rangle}{\\max(\\lVert D_c \\rVert, 10^{-12})^2},

and the output is :math:`A + b_c D_c + b_m m` with anchor :math:`A = D_c` (paper, ComfyUI,
diffusers' original formulation) or :math:`D_u` (diffusers' default), exactly the eager
:func:`apg_guidance.apg`. The scalars travel as one small tensor (cached per setting, so a
sampling run copies them to the device once), so changing the scale, ``eta``, ``r`` or ``beta``
does not recompile; the structural flags (momentum state present, clip on,
projection on, anchor) and the shapes and dtypes do, once each.

The first call compiles (seconds; a C++ compiler is needed on the CPU). Meant for inference:
gradients flow, but a zero-norm difference with the clip on has no defined gradient.
"""

from __future__ import annotations

import math
import types
from typing import Any

import torch

_EPS2 = 1e-24  # the listing's F.normalize epsilon (1e-12), squared


def _fused_rows(
    c: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor | None,
    scalars: torch.Tensor,
    clip: bool,
    proj: bool,
    cond_anchor: bool,
    out_dtype: torch.dtype,
    start: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    # scalars = [s, beta, r, 1 - eta] in the compute dtype; the reduced dims of c, u and state
    # are the trailing ones from ``start`` on: viewed as (rows, features) here, inside the graph
    # (free), and the results viewed back to the input shape
    shape = c.shape
    rows = (-1, math.prod(shape[start:]))
    cd = scalars.dtype
    cc_ = c.reshape(rows).to(cd)
    uu = u.reshape(rows).to(cd)
    if state is not None:
        state = state.reshape(rows)
    d = cc_ - uu

    def momentum() -> torch.Tensor:
        # m_t = Delta + beta m_{t-1}, written out at each use on purpose: with one shared ``m``
        # inductor stores it in a pass of its own and reads it back for the sums (~10 % slower
        # on the CPU); this way the sums read c, u, state and m is stored only by the last loop
        return d if state is None else d + scalars[1] * state

    b_m = scalars[0].expand(cc_.shape[0], 1)
    if clip:
        mm = (momentum() * momentum()).sum(dim=1, keepdim=True)
        b_m = b_m * torch.clamp(scalars[2] * torch.rsqrt(mm), max=1.0)  # ||m|| = 0 -> inf -> 1
    anchor = cc_ if cond_anchor else uu
    m = momentum()
    if proj:
        k = (momentum() * cc_).sum(dim=1, keepdim=True) / torch.clamp(
            (cc_ * cc_).sum(dim=1, keepdim=True), min=_EPS2
        )
        out = anchor + (-b_m * scalars[3] * k) * cc_ + b_m * m
    else:
        out = anchor + b_m * m
    return out.to(out_dtype).reshape(shape), m.reshape(shape)


_compiled: dict[tuple[Any, ...], Any] = {}
_scalars: dict[tuple[Any, ...], torch.Tensor] = {}


def _kernel(key: tuple[Any, ...]) -> Any:
    """The compiled kernel for one configuration (flags, dtypes, device type).

    Dynamo keeps its compile cache, and its recompile limit, per code object; one code object per
    configuration keeps a sampler that switches dtypes or flags from exhausting that limit (which
    would end in an error with ``fullgraph=True``). Only shape changes recompile within a key.
    """
    fn = _compiled.get(key)
    if fn is None:
        code = _fused_rows.__code__.replace(co_name=f"_fused_rows_{len(_compiled)}")
        clone = types.FunctionType(code, _fused_rows.__globals__, code.co_name)
        fn = torch.compile(clone, dynamic=None, fullgraph=True)
        _compiled[key] = fn
    return fn


def fused_combine(
    c: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor | None,
    *,
    coef: float,
    beta: float,
    norm_threshold: float,
    eta: float,
    cond_anchor: bool,
    compute_dtype: torch.dtype,
    start: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided prediction and new state, shaped like ``c``; dims ``start:`` are reduced (per
    sample), the leading dims index the samples. See the module docstring."""
    prev = state if (state is not None and beta != 0.0) else None
    clip, proj = norm_threshold > 0.0, eta != 1.0
    key = (prev is not None, clip, proj, cond_anchor, c.dtype, compute_dtype, c.device.type)
    values = (coef, beta, norm_threshold, 1.0 - eta)
    skey = (values, compute_dtype, c.device)
    scalars = _scalars.get(skey)
    if scalars is None:  # one host-to-device copy per setting, not per step
        if len(_scalars) >= 64:
            _scalars.clear()
        scalars = torch.tensor(values, dtype=compute_dtype, device=c.device)
        _scalars[skey] = scalars
    guided: torch.Tensor
    new_state: torch.Tensor
    guided, new_state = _kernel(key)(c, u, prev, scalars, clip, proj, cond_anchor, c.dtype, start)
    return guided, new_state

"""Adaptive Projected Guidance as plain functions (no hidden state).

Sadat, Hilliges, Weber, "Eliminating Oversaturation and Artifacts of High Guidance Scales in
Diffusion Models", ICLR 2025, arXiv:2410.02416 (the update is listed in the paper's appendix).

Notation (EDM): :math:`D_c = D(x, \\sigma, y)` and :math:`D_u = D(x, \\sigma, \\varnothing)` are the
conditional and unconditional *denoised* predictions, ``w`` the guidance scale with ``w = 1``
meaning no guidance. One APG step, in the paper's order:

.. math::

    \\Delta &= D_c - D_u \\\\
    m_t &= \\Delta + \\beta\\, m_{t-1}, \\qquad m_0 = 0, \\qquad \\Delta \\leftarrow m_t \\\\
    \\Delta &\\leftarrow \\Delta \\cdot \\min\\bigl(1, r / \\lVert \\Delta \\rVert\\bigr) \\\\
    \\Delta_\\parallel &= \\frac{\\langle \\Delta, D_c \\rangle}{\\lVert D_c \\rVert^2}\\, D_c, \\qquad
    \\Delta_\\perp = \\Delta - \\Delta_\\parallel \\\\
    \\hat D &= D_c + (w - 1)\\,(\\Delta_\\perp + \\eta\\, \\Delta_\\parallel)

Norms and inner products are taken per sample over the non-batch dims. With ``eta=1``,
``norm_threshold=0`` and ``momentum=0`` this is classifier-free guidance exactly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from apg_guidance._fused import fused_combine

ScaleConvention = Literal["paper", "diffusers", "diffusers_original", "comfyui"]
SCALE_CONVENTIONS: tuple[str, ...] = ("paper", "diffusers", "diffusers_original", "comfyui")

#: eps of ``torch.nn.functional.normalize``, which the paper's listing uses for ``D_c / ||D_c||``.
_NORMALIZE_EPS = 1e-12


# --------------------------------------------------------------------------- validation


def _check_real(name: str, value: object) -> float:
    if type(value) is float:  # the common case, without the slower ABC check below
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _check_pair(pred_cond: object, pred_uncond: object) -> None:
    for name, t in (("pred_cond", pred_cond), ("pred_uncond", pred_uncond)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    assert isinstance(pred_cond, torch.Tensor) and isinstance(pred_uncond, torch.Tensor)
    if pred_cond.shape != pred_uncond.shape:
        raise ValueError(
            f"pred_cond and pred_uncond must have the same shape, got {tuple(pred_cond.shape)} "
            f"and {tuple(pred_uncond.shape)}"
        )
    if pred_cond.dtype != pred_uncond.dtype:
        raise TypeError(
            f"pred_cond and pred_uncond must have the same dtype, got {pred_cond.dtype} and {pred_uncond.dtype}"
        )
    if pred_cond.device != pred_uncond.device:
        raise ValueError(
            f"pred_cond and pred_uncond must be on the same device, got {pred_cond.device} and {pred_uncond.device}"
        )
    if pred_cond.ndim < 2:
        raise ValueError(
            f"predictions need a batch dim and at least one feature dim, got shape {tuple(pred_cond.shape)}"
        )


def _reduce_dims(ndim: int, dims: int | Sequence[int] | None) -> tuple[int, ...]:
    """Normalised, sorted reduction dims; never the batch dim 0."""
    if dims is None:
        return tuple(range(1, ndim))
    raw = [dims] if isinstance(dims, int) else list(dims)
    if not raw:
        raise ValueError("dims must name at least one dim, got an empty sequence")
    out = set()
    for d in raw:
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"dims must be ints, got {dims!r}")
        if not -ndim <= d < ndim:
            raise ValueError(f"dims={dims!r} is out of range for a tensor with {ndim} dims")
        p = d % ndim
        if p == 0:
            raise ValueError(f"dims must not include the batch dim 0, got dims={dims!r}")
        out.add(p)
    return tuple(sorted(out))


def _as_rows(x: torch.Tensor, red: tuple[int, ...]) -> torch.Tensor:
    """View ``x`` as (rows, features): reduced dims last and flattened."""
    if red[0] == x.ndim - len(red):  # reduced dims are already trailing (sorted, unique)
        return x.reshape(-1, math.prod(x.shape[red[0] :]))
    keep = tuple(d for d in range(x.ndim) if d not in red)
    n = math.prod(x.shape[d] for d in red)
    return x.permute(*keep, *red).reshape(-1, n)


def _from_rows(rows: torch.Tensor, shape: torch.Size, red: tuple[int, ...]) -> torch.Tensor:
    if red[0] == len(shape) - len(red):
        return rows.reshape(shape)
    keep = tuple(d for d in range(len(shape)) if d not in red)
    perm = (*keep, *red)
    permuted = rows.reshape([shape[d] for d in perm])
    inverse = [perm.index(d) for d in range(len(shape))]
    return permuted.permute(*inverse)


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise inner products of two (M, N) tensors, shape (M,).

    ``torch.linalg.vecdot`` rather than a batched ``bmm`` of (M, 1, N) by (M, N, 1): on CPU the
    latter falls back to a slow non-BLAS kernel (about 5x slower at (2, 65536)).
    """
    dots: torch.Tensor = torch.linalg.vecdot(a, b, dim=1)
    return dots


#: Up to this many rows on CPU (and without autograd), the per-sample reductions are one BLAS
#: ``dot`` per row and the per-sample scalars are plain Python floats: a handful of kernel calls
#: in all, instead of a dozen small tensor ops whose dispatch overhead dominated at B = 2.
_FEW_ROWS = 16


_NUMPY_DTYPES: dict[torch.dtype, type[np.floating]] = {
    torch.float32: np.float32,
    torch.float64: np.float64,
}


def _use_scalar_path(*tensors: torch.Tensor) -> bool:
    t = tensors[0]
    if t.device.type != "cpu" or t.ndim != 2 or t.shape[0] > _FEW_ROWS:
        return False
    return not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors))


def _compute_dtype(dtype: torch.dtype, compute_dtype: torch.dtype | None) -> torch.dtype:
    if compute_dtype is None:
        return torch.promote_types(dtype, torch.float32)
    if not isinstance(compute_dtype, torch.dtype) or not compute_dtype.is_floating_point:
        raise TypeError(
            f"compute_dtype must be a floating torch.dtype or None, got {compute_dtype!r}"
        )
    return compute_dtype


def _anchor_and_coef(scale: float, convention: str) -> tuple[Literal["cond", "uncond"], float]:
    """Map a guidance scale in ``convention`` to the guided anchor and the update coefficient."""
    if convention == "paper":
        if scale < 1.0:
            raise ValueError(
                f"guidance_scale must be >= 1 in the 'paper' convention (w = 1 is no guidance), got {scale!r}"
            )
        return "cond", scale - 1.0
    if convention in ("comfyui", "diffusers_original"):
        if scale < 0.0:
            raise ValueError(
                f"guidance_scale must be >= 0 in the {convention!r} convention (0 is no guidance), got {scale!r}"
            )
        return "cond", scale
    if convention == "diffusers":
        if scale < 1.0:
            raise ValueError(
                f"guidance_scale must be >= 1 in the 'diffusers' convention (D_u + s * update), got {scale!r}"
            )
        return "uncond", scale
    raise ValueError(f"scale_convention must be one of {SCALE_CONVENTIONS}, got {convention!r}")


def paper_scale(guidance_scale: float, scale_convention: ScaleConvention) -> float:
    """The paper's ``w`` equivalent to ``guidance_scale`` in ``scale_convention``.

    ``comfyui`` and ``diffusers_original`` scales ``s`` equal the paper's ``w = s + 1``. The
    ``diffusers`` (native) convention anchors at :math:`D_u` and has no equivalent ``w`` unless
    ``eta = 1`` and nothing is clipped, where it is CFG with ``w = s``; for it this returns ``s``.
    """
    s = _check_real("guidance_scale", guidance_scale)
    anchor, coef = _anchor_and_coef(s, scale_convention)
    return coef + 1.0 if anchor == "cond" else coef


# --------------------------------------------------------------------------- baselines


def cfg(pred_cond: torch.Tensor, pred_uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans), paper convention.

    .. math:: \\hat D = D_c + (w - 1)(D_c - D_u) = D_u + w (D_c - D_u)

    Any finite ``w`` is accepted: ``w = 1`` is the conditional prediction, ``w = 0`` the
    unconditional one.
    """
    _check_pair(pred_cond, pred_uncond)
    w = _check_real("guidance_scale", guidance_scale)
    return torch.add(pred_cond, pred_cond - pred_uncond, alpha=w - 1.0)


def rescaled_cfg(
    pred_cond: torch.Tensor,
    pred_uncond: torch.Tensor,
    guidance_scale: float,
    *,
    phi: float = 0.7,
    dims: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """CFG with the standard-deviation rescale of Lin et al. (2024, arXiv:2305.08891, Sec. 3.4).

    .. math::

        \\hat D_{cfg} = D_c + (w-1)(D_c - D_u), \\qquad
        \\hat D = \\phi\\, \\hat D_{cfg} \\frac{\\operatorname{std}(D_c)}{\\operatorname{std}(\\hat D_{cfg})}
                 + (1 - \\phi)\\, \\hat D_{cfg}

    with the (unbiased) standard deviation per sample over ``dims`` (default: all non-batch dims),
    as diffusers' ``guidance_rescale``. ``phi`` in [0, 1]; the authors recommend 0.7.
    """
    guided = cfg(pred_cond, pred_uncond, guidance_scale)
    p = _check_real("phi", phi)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"phi must be in [0, 1], got {phi!r}")
    red = list(_reduce_dims(pred_cond.ndim, dims))
    std_c = pred_cond.std(dim=red, keepdim=True)
    std_g = guided.std(dim=red, keepdim=True)
    rescaled = guided * (std_c / std_g)
    return p * rescaled + (1.0 - p) * guided


# --------------------------------------------------------------------------- APG


def project(
    v: torch.Tensor, onto: torch.Tensor, *, dims: int | Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``v`` into its components parallel and orthogonal to ``onto``, per sample.

    .. math:: v_\\parallel = \\frac{\\langle v, u \\rangle}{\\max(\\lVert u \\rVert, 10^{-12})^2} u,
              \\qquad v_\\perp = v - v_\\parallel

    A zero ``onto`` gives ``v_parallel = 0`` (no NaN). Computed in at least float32.
    """
    _check_pair(v, onto)
    red = _reduce_dims(v.ndim, dims)
    cd = _compute_dtype(v.dtype, None)
    vr, ur = _as_rows(v.to(cd), red), _as_rows(onto.to(cd), red)
    k = _rowdot(vr, ur) / _rowdot(ur, ur).clamp_min(_NORMALIZE_EPS**2)
    par = ur * k.unsqueeze(1)
    orth = vr - par
    return (
        _from_rows(par, v.shape, red).to(v.dtype),
        _from_rows(orth, v.shape, red).to(v.dtype),
    )


def _combine_coefficients(
    mr: torch.Tensor,
    cr: torch.Tensor,
    *,
    coef: float,
    eta: float,
    norm_threshold: float,
    cond_anchor: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row weights ``(a_c, b_m)``, each (M, 1) in ``mr``'s dtype, of ``c`` and ``m``.

    ``coef * nu = b_c c + b_m m`` with ``nu = clip * (m - (1 - eta) k c)``,
    ``clip = min(1, r / ||m||)`` (1 if ``r = 0``) and ``k = <m, c> / max(||c||, 1e-12)^2``;
    ``a_c = 1 + b_c`` when the anchor is ``c`` itself, else ``b_c``. Only the reductions read
    whole tensors, in ``mr``'s dtype (never half by default).
    """
    r, need_proj = norm_threshold, eta != 1.0
    rows = mr.shape[0]
    if _use_scalar_path(mr, cr):
        # Few rows on CPU: every per-sample reduction is one BLAS dot (<m, m>, <m, c>, <c, c>),
        # read back as Python floats; the scalar algebra runs in Python floats (float64), and
        # the two (M, 1) weight tensors come from one small array. Squared norms come straight
        # from the dots (no sqrt-then-square round trip).
        parts: list[torch.Tensor] = []
        for x, y in zip(mr.unbind(), cr.unbind(), strict=True):
            if r > 0.0:
                parts.append(torch.dot(x, x))
            if need_proj:
                parts += (torch.dot(x, y), torch.dot(y, y))
        vals = [p.item() for p in parts]
        per_row = (r > 0.0) + 2 * need_proj
        eps2 = _NORMALIZE_EPS**2
        coefs: list[float] = []
        for i in range(rows):
            row = vals[i * per_row : (i + 1) * per_row]
            clip_i = 1.0
            if r > 0.0 and row[0] > r * r:  # ||m|| > r; a zero difference keeps scale 1 (no NaN)
                clip_i = r / math.sqrt(row[0])
            bc_i = 0.0
            if need_proj:  # k = <m, c> / max(||c||, eps)^2
                bc_i = -coef * (1.0 - eta) * clip_i * (row[-2] / max(row[-1], eps2))
            coefs += (1.0 + bc_i if cond_anchor else bc_i, coef * clip_i)
        np_dtype = _NUMPY_DTYPES.get(mr.dtype)
        if np_dtype is not None:  # torch.from_numpy is a few microseconds cheaper than torch.tensor
            both = torch.from_numpy(np.array(coefs, dtype=np_dtype).reshape(rows, 2, 1))
        else:
            both = torch.tensor(coefs, dtype=mr.dtype).view(rows, 2, 1)
        a_c, b_m = both.unbind(1)
        return a_c, b_m
    if r > 0.0:
        # r / 0 = inf, so a zero difference keeps scale 1 (no NaN)
        clip = torch.clamp(r / torch.linalg.vector_norm(mr, dim=1), max=1.0)
    else:
        clip = torch.ones(rows, dtype=mr.dtype, device=mr.device)
    if need_proj:
        k = _rowdot(mr, cr) / _rowdot(cr, cr).clamp_min(_NORMALIZE_EPS**2)
        b_c = (-coef * (1.0 - eta)) * clip * k
    else:
        b_c = torch.zeros_like(clip)
    a_c = b_c + 1.0 if cond_anchor else b_c
    return a_c.unsqueeze(1), (coef * clip).unsqueeze(1)


def apg(
    pred_cond: torch.Tensor,
    pred_uncond: torch.Tensor,
    guidance_scale: float,
    *,
    eta: float = 0.0,
    norm_threshold: float = 0.0,
    momentum: float = 0.0,
    state: torch.Tensor | None = None,
    dims: int | Sequence[int] | None = None,
    scale_convention: ScaleConvention = "paper",
    compute_dtype: torch.dtype | None = None,
    fused: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Adaptive Projected Guidance; returns ``(guided, state)``.

    The update, in the paper's order (see the module docstring for the equations): difference
    :math:`\\Delta = D_c - D_u`; reverse momentum :math:`m_t = \\Delta + \\beta m_{t-1}`
    (``m_0 = 0``, not an EMA); norm clipping :math:`\\Delta \\cdot \\min(1, r/\\lVert\\Delta\\rVert)`;
    projection onto :math:`D_c`; recombination :math:`D_c + (w-1)(\\Delta_\\perp + \\eta\\Delta_\\parallel)`.

    Apply it to denoised (x0) predictions, as the paper does; :func:`apg_guidance.to_x0` converts
    epsilon, v and flow outputs.

    Args:
        pred_cond: conditional prediction :math:`D_c`, shape (B, ...), floating point.
        pred_uncond: unconditional prediction :math:`D_u`, same shape, dtype and device.
        guidance_scale: ``w`` in the paper's convention (``w = 1`` is no guidance, must be >= 1);
            see ``scale_convention`` for other tools' conventions.
        eta: weight :math:`\\eta` of the parallel component; the paper recommends 0. ``eta = 1``
            keeps it (CFG). The norm bound :math:`\\lVert \\hat D - D_c \\rVert \\le (w-1) r` holds
            for :math:`|\\eta| \\le 1`.
        norm_threshold: :math:`r`, per-sample bound on the L2 norm of the (momentum-accumulated)
            difference; 0 disables the clip.
        momentum: :math:`\\beta`, with :math:`|\\beta| < 1`; negative ("reverse") momentum is the
            paper's recommendation (e.g. -0.5 for SDXL); 0 disables it.
        state: the running momentum :math:`m_{t-1}` returned by the previous step of the same
            sampling run, or ``None`` at the first step.
        dims: dims over which norms and projections are taken (never dim 0); default all
            non-batch dims. The paper's listing uses ``(-1, -2, -3)``, identical for 4-D latents.
        scale_convention: how ``guidance_scale`` is read:
            ``"paper"``: :math:`D_c + (w-1)\\,\\nu`;
            ``"comfyui"`` and ``"diffusers_original"``: :math:`D_c + s\\,\\nu` (``s = w - 1``; ComfyUI's
            ``APG`` node and diffusers with ``use_original_formulation=True``);
            ``"diffusers"``: :math:`D_u + s\\,\\nu`, diffusers' default ("native") update, which is
            not the paper's unless ``eta = 1`` and nothing is clipped.
        compute_dtype: dtype of the internal arithmetic and of the returned state; default the
            input dtype promoted to at least float32 (half inputs are never reduced in half).
            ``torch.float64`` reproduces the listing's float64 projection.
        fused: run the step as one kernel compiled with :func:`torch.compile` (a reduction pass
            and an element-wise pass instead of about seven; C++ on the CPU, Triton on CUDA).
            Same arithmetic, equal to float rounding; the first call per configuration compiles
            (seconds) and needs a C++ compiler on the CPU. See :mod:`apg_guidance._fused`.

    Returns:
        ``guided`` in the dtype of the inputs, and the new momentum state :math:`m_t` (in
        ``compute_dtype``; equal to :math:`\\Delta` when ``momentum = 0``).
    """
    _check_pair(pred_cond, pred_uncond)
    s = _check_real("guidance_scale", guidance_scale)
    anchor, coef = _anchor_and_coef(s, scale_convention)
    e = _check_real("eta", eta)
    r = _check_real("norm_threshold", norm_threshold)
    if r < 0:
        raise ValueError(
            f"norm_threshold must be >= 0 (0 disables the clip), got {norm_threshold!r}"
        )
    beta = _check_real("momentum", momentum)
    if not -1.0 < beta < 1.0:
        raise ValueError(
            f"momentum must satisfy |momentum| < 1 (the buffer diverges otherwise), got {momentum!r}"
        )
    red = _reduce_dims(pred_cond.ndim, dims)
    cd = _compute_dtype(pred_cond.dtype, compute_dtype)
    if state is not None:
        if not isinstance(state, torch.Tensor):
            raise TypeError(f"state must be a torch.Tensor or None, got {type(state).__name__}")
        if state.shape != pred_cond.shape:
            raise ValueError(
                f"state has shape {tuple(state.shape)} but the predictions have shape "
                f"{tuple(pred_cond.shape)}; start a new run (state=None / reset()) when the batch changes"
            )
        if state.device != pred_cond.device:
            raise ValueError(
                f"state is on {state.device} but the predictions are on {pred_cond.device}"
            )

    if not isinstance(fused, bool):
        raise TypeError(f"fused must be a bool, got {type(fused).__name__} {fused!r}")
    if fused:
        prev = None
        if beta != 0.0 and state is not None:
            prev = state if state.dtype == cd else state.to(cd)
        if red[0] == pred_cond.ndim - len(red):  # trailing reduced dims: no reshaping here
            return fused_combine(
                pred_cond,
                pred_uncond,
                prev,
                cond_anchor=anchor == "cond",
                compute_dtype=cd,
                start=red[0],
                coef=coef,
                beta=beta,
                norm_threshold=r,
                eta=e,
            )
        g_rows, m_rows = fused_combine(
            _as_rows(pred_cond, red),
            _as_rows(pred_uncond, red),
            None if prev is None else _as_rows(prev, red),
            cond_anchor=anchor == "cond",
            compute_dtype=cd,
            coef=coef,
            beta=beta,
            norm_threshold=r,
            eta=e,
        )
        return _from_rows(g_rows, pred_cond.shape, red), _from_rows(m_rows, pred_cond.shape, red)

    c = pred_cond if pred_cond.dtype == cd else pred_cond.to(cd)
    delta = torch.sub(c, pred_uncond if pred_uncond.dtype == cd else pred_uncond.to(cd))
    # m_t = Delta + beta * m_{t-1}, in place (Delta is a fresh tensor): the paper's order
    if beta != 0.0 and state is not None:
        m = delta.add_(state if state.dtype == cd else state.to(cd), alpha=beta)
    else:
        m = delta
    new_state = m

    if e == 1.0 and r == 0.0:  # no projection, no clip: the update is m itself
        base = c if anchor == "cond" else pred_uncond.to(cd)
        guided = torch.add(base, m, alpha=coef)
        return guided.to(pred_cond.dtype), new_state

    cr, mr = _as_rows(c, red), _as_rows(m, red)
    # guided = anchor + coef * nu with nu = clip * (m - (1 - eta) * k * c), k = <m, c> / ||c||^2,
    # regrouped per sample as a_c * c + b_m * m (+ D_u for the diffusers anchor): two passes
    # over memory after the reductions, the second in place.
    a_c, b_m = _combine_coefficients(
        mr, cr, coef=coef, eta=e, norm_threshold=r, cond_anchor=anchor == "cond"
    )
    if anchor == "cond":
        out_rows = torch.mul(cr, a_c)
    else:
        out_rows = torch.addcmul(_as_rows(pred_uncond.to(cd), red), cr, a_c)
    out_rows.addcmul_(mr, b_m)
    guided = _from_rows(out_rows, pred_cond.shape, red)
    if guided.dtype != pred_cond.dtype:
        guided = guided.to(pred_cond.dtype)
    return guided, new_state


__all__ = [
    "SCALE_CONVENTIONS",
    "ScaleConvention",
    "apg",
    "cfg",
    "paper_scale",
    "project",
    "rescaled_cfg",
]

r"""The Lion / Lion-𝒦 update as a plain function (the optimizer class only holds state).

Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675) with
the Lion-𝒦 generalisation (Chen, Liu, Liang, Liu, ICLR 2024, arXiv:2310.05898). One step, for
every parameter ``x`` with gradient ``g`` and momentum ``m`` (``g ← −g`` when maximising):

.. math::

    x &\leftarrow x\,(1 - \eta\lambda) \\
    c &= \beta_1 m + (1-\beta_1)\,g \\
    x &\leftarrow x - \eta\,\nabla\mathcal K(c) \\
    m &\leftarrow \beta_2 m + (1-\beta_2)\,g

with ``η = lr``, ``λ = weight_decay`` and ``∇𝒦 = sign`` for Lion. This is the order of the
official code (google/automl ``lion/lion_pytorch.py``); the decay uses ``x`` before the step, so
``x_t = x_{t-1} − η(∇𝒦(c_t) + λx_{t-1})`` as in the paper.

For ``∇𝒦 = sign`` and ``ηλ ≤ 1`` the update is the convex combination
``x ← (1−ηλ)x + ηλ·(−sign(c)/λ)``: the box ``‖x‖∞ ≤ 1/λ`` is forward-invariant and, outside
it, the excess ``max|x| − 1/λ`` shrinks by at least a factor ``1−ηλ`` per step, for any
gradients and any learning-rate schedule.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import Tensor

from lion_opt.kappa import Kappa, get_kappa

__all__ = ["lion_step", "validate_hyperparameters"]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_hyperparameters(lr: object, betas: object, weight_decay: object) -> None:
    """Check ``lr ≥ 0``, ``0 ≤ β1, β2 < 1``, ``weight_decay ≥ 0`` and ``lr·weight_decay ≤ 1``.

    Raises:
        TypeError: a value is not a real number (or ``betas`` not a pair).
        ValueError: a value is out of range; the message names the argument and the value.
    """
    if not _is_number(lr):
        raise TypeError(f"lr must be a real number, got {lr!r}")
    if not (math.isfinite(lr) and lr >= 0.0):  # type: ignore[arg-type, operator]
        raise ValueError(f"Invalid learning rate: lr must be a finite number >= 0, got {lr!r}")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if not _is_number(beta):
            raise TypeError(f"betas[{i}] must be a real number, got {beta!r}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(
                f"Invalid beta parameter at index {i}: betas[{i}] must be in [0, 1), got {beta!r}"
            )
    if not _is_number(weight_decay):
        raise TypeError(f"weight_decay must be a real number, got {weight_decay!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0.0):  # type: ignore[arg-type, operator]
        raise ValueError(
            f"Invalid weight_decay: weight_decay must be a finite number >= 0, got {weight_decay!r}"
        )
    if lr * weight_decay > 1.0:  # type: ignore[operator]
        raise ValueError(
            f"lr * weight_decay must be <= 1 (the decay factor 1 - lr*weight_decay would be negative), "
            f"got lr={lr!r}, weight_decay={weight_decay!r}"
        )


def lion_step(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.0,
    kappa: str | Kappa = "sign",
    maximize: bool = False,
    foreach: bool = False,
) -> None:
    r"""One Lion-𝒦 step over lists of parameters, updating ``params`` and ``exp_avgs`` in place.

    This follows ``torch.optim``'s functional convention: parameters and optimizer state are
    updated in place; ``grads`` are never modified.

    Args:
        params: parameter tensors (real or complex; complex ones are treated as pairs of reals,
            so ``sign`` acts on real and imaginary parts separately, unlike ``torch.sgn``).
        grads: their gradients (dense, same shapes).
        exp_avgs: the momentum ``m`` of each parameter. Its dtype may be wider than the
            parameter's (e.g. float32 state for bfloat16 parameters); the update is then
            computed in that dtype and rounded into the parameter once.
        lr: learning rate ``η ≥ 0``.
        betas: ``(β1, β2)``, each in ``[0, 1)``: β1 mixes the direction, β2 the momentum.
        weight_decay: ``λ ≥ 0``, decoupled and multiplied by lr: ``x ← x(1 − ηλ)``; requires
            ``ηλ ≤ 1``. The solved problem's constraint radius is ``1/λ``.
        kappa: the Lion-𝒦 member (``"sign"`` is Lion), see :mod:`lion_opt.kappa`.
        maximize: maximise the objective (the gradients are negated).
        foreach: use the multi-tensor ``torch._foreach_*`` path (same result, fewer kernel
            launches); tensors are grouped by device and dtype.

    Raises:
        ValueError: mismatched list lengths or shapes, or an invalid hyperparameter.
        TypeError: a sparse gradient.
    """
    validate_hyperparameters(lr, betas, weight_decay)
    k = get_kappa(kappa)
    if not (len(params) == len(grads) == len(exp_avgs)):
        raise ValueError(
            f"params, grads and exp_avgs must have the same length, got {len(params)}, {len(grads)}, {len(exp_avgs)}"
        )
    ps, gs, ms = [], [], []
    for i, (p, g, m) in enumerate(zip(params, grads, exp_avgs)):
        if g.is_sparse:
            raise TypeError(
                f"Lion does not support sparse gradients (grads[{i}] has layout {g.layout})"
            )
        if g.shape != p.shape or m.shape != p.shape:
            raise ValueError(
                f"grads[{i}] and exp_avgs[{i}] must have the shape of params[{i}] {tuple(p.shape)}, "
                f"got {tuple(g.shape)} and {tuple(m.shape)}"
            )
        if p.is_complex():
            p, g, m = torch.view_as_real(p), torch.view_as_real(g), torch.view_as_real(m)
        ps.append(p)
        gs.append(g)
        ms.append(m)
    apply_update(
        ps,
        gs,
        ms,
        float(lr),
        float(betas[0]),
        float(betas[1]),
        float(weight_decay),
        k,
        maximize,
        foreach,
    )


def apply_update(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    wd: float,
    k: Kappa,
    maximize: bool,
    foreach: bool,
) -> None:
    """:func:`lion_step` without validation: real, dense tensors of matching shapes only."""
    if foreach:
        _multi_tensor(ps, gs, ms, lr, beta1, beta2, wd, k, maximize)
    else:
        for p, g, m in zip(ps, gs, ms):
            _single_tensor(p, g, m, lr, beta1, beta2, wd, k, maximize)


def _single_tensor(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    wd: float,
    k: Kappa,
    maximize: bool,
) -> None:
    if maximize:
        g = torch.neg(g)
    if g.dtype != m.dtype:
        g = g.to(m.dtype)
    work = p if p.dtype == m.dtype else p.to(m.dtype)
    if wd != 0.0:
        work.mul_(1.0 - lr * wd)
    c = torch.lerp(m, g, 1.0 - beta1)
    work.add_(k.direction_(c), alpha=-lr)
    m.lerp_(g, 1.0 - beta2)
    if work is not p:
        p.copy_(work)


def _multi_tensor(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    wd: float,
    k: Kappa,
    maximize: bool,
) -> None:
    buckets: dict[tuple[torch.device, torch.dtype, torch.dtype, torch.dtype], list[int]] = (
        defaultdict(list)
    )
    for i, (p, g, m) in enumerate(zip(ps, gs, ms)):
        buckets[(p.device, p.dtype, g.dtype, m.dtype)].append(i)
    for (_, p_dtype, g_dtype, m_dtype), idx in buckets.items():
        params = [ps[i] for i in idx]
        grads = [gs[i] for i in idx]
        moms = [ms[i] for i in idx]
        if maximize:
            grads = list(torch._foreach_neg(grads))
        if g_dtype != m_dtype:
            grads = [g.to(m_dtype) for g in grads]
        work = params if p_dtype == m_dtype else [p.to(m_dtype) for p in params]
        if wd != 0.0:
            torch._foreach_mul_(work, 1.0 - lr * wd)
        cs = torch._foreach_lerp(moms, grads, 1.0 - beta1)
        torch._foreach_add_(work, k.foreach_direction_(list(cs)), alpha=-lr)
        torch._foreach_lerp_(moms, grads, 1.0 - beta2)
        if work is not params:
            torch._foreach_copy_(params, work)

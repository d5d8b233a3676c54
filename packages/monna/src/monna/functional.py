"""The math of MoNNA as plain functions (numpy and torch): NNA, the local step, the schedule.

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead", ICML 2023 (arXiv:2209.10931). Official code:
LPD-EPFL/robust-collaborative-learning (``aggregators/cva.py``, ``peerToPeer.py``).

Nearest-neighbour averaging (NNA) of a received set :math:`S = (v_1, \\dots, v_m)` around the pivot
:math:`v_p` (the node's own vector) with :math:`f` declared faulty senders:

.. math::

    \\mathrm{NNA}_p(S) = \\frac{1}{m - f} \\sum_{j \\in N_p} v_j, \\qquad
    N_p = \\text{the } m - f \\text{ indices } j \\text{ with the smallest } \\lVert v_j - v_p \\rVert_2,

ties broken by the lower index (a stable sort by distance, as the official code's Python sort).
A vector with a non-finite entry is at distance :math:`+\\infty` and ranks last: it is treated as a
faulty sender's. If more than :math:`f` received vectors are non-finite, or the pivot itself is,
NNA raises instead of averaging a non-finite vector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, overload

import numpy as np

if TYPE_CHECKING:
    import torch


def _check_f(f: object, m: int) -> int:
    if not isinstance(f, (int, np.integer)) or isinstance(f, bool):
        raise TypeError(f"f must be an int, got {type(f).__name__} {f!r}")
    if f < 0:
        raise ValueError(f"f must be non-negative, got f={f}")
    if 2 * f >= m:
        raise ValueError(
            f"f={f} is too large for {m} received vectors: NNA needs 2f < m (an honest majority)"
        )
    return int(f)


def _check_pivot(pivot: object, m: int) -> int:
    if not isinstance(pivot, (int, np.integer)) or isinstance(pivot, bool):
        raise TypeError(f"pivot must be an int index, got {type(pivot).__name__} {pivot!r}")
    if not 0 <= pivot < m:
        raise ValueError(f"pivot must be in [0, {m}), got pivot={pivot}")
    return int(pivot)


def nna_numpy(vectors: np.ndarray, f: int, pivot: int) -> np.ndarray:
    """NNA in numpy: the mean of the ``m - f`` rows of ``vectors`` closest to ``vectors[pivot]``.

    Args:
        vectors: shape ``(m, d)``, the received set (row ``pivot`` is the node's own vector).
        f: number of faulty senders to tolerate; ``2 f < m``.
        pivot: index of the node's own vector in ``vectors``.

    Returns:
        An array of shape ``(d,)`` in the input's floating dtype (distances in float64).
    """
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"vectors must have shape (m, d) with m >= 1, got shape {v.shape}")
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float64)
    m = v.shape[0]
    f = _check_f(f, m)
    pivot = _check_pivot(pivot, m)
    finite = np.isfinite(v).all(axis=1)
    if not finite[pivot]:
        raise ValueError(f"the pivot vector (row {pivot}) is not finite")
    diff = v.astype(np.float64) - v[pivot].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    dist[~finite] = np.inf
    keep = np.argsort(dist, kind="stable")[: m - f]
    if not finite[keep].all():
        raise ValueError(
            f"{int((~finite).sum())} received vectors are non-finite, more than f={f}: "
            "the honest-majority assumption is broken"
        )
    return v[keep].mean(axis=0)  # type: ignore[no-any-return]


def nna_torch(vectors: torch.Tensor, f: int, pivot: int | torch.Tensor) -> torch.Tensor:
    """NNA in torch for one received set ``(m, d)`` or a batch ``(B, m, d)``.

    ``pivot`` is one index shared by the batch, or a ``(B,)`` integer tensor of per-set pivots.
    Differences are taken in the input dtype (as the official code), norms accumulated in float64;
    the mean keeps the input dtype.
    Ties go to the lower index (stable sort). See :func:`nna_numpy` for the arguments.
    """
    import torch

    if not isinstance(vectors, torch.Tensor):
        raise TypeError(f"vectors must be a torch.Tensor, got {type(vectors).__name__}")
    if vectors.ndim not in (2, 3) or vectors.shape[-2] == 0:
        raise ValueError(
            f"vectors must have shape (m, d) or (B, m, d) with m >= 1, got {tuple(vectors.shape)}"
        )
    single = vectors.ndim == 2
    v = vectors.unsqueeze(0) if single else vectors
    if not v.is_floating_point():
        v = v.double()
    m = v.shape[1]
    f = _check_f(f, m)
    if isinstance(pivot, torch.Tensor):
        if pivot.shape != (v.shape[0],) or pivot.dtype != torch.long:
            raise ValueError(
                f"pivot as a tensor must be int64 of shape ({v.shape[0]},), got {pivot!r}"
            )
        if bool(((pivot < 0) | (pivot >= m)).any()):
            raise ValueError(f"pivot entries must be in [0, {m}), got {pivot.tolist()}")
        piv = pivot.to(v.device)
    else:
        piv = torch.full((v.shape[0],), _check_pivot(pivot, m), dtype=torch.long, device=v.device)
    own = v.gather(1, piv[:, None, None].expand(-1, 1, v.shape[-1]))  # (B, 1, d)
    if not bool(torch.isfinite(own).all()):
        raise ValueError(f"the pivot vector (row {pivot}) is not finite")
    # One pass over (B, m, d): the difference in the input dtype, the norm accumulated in float64.
    # A row holding NaN/Inf gets a non-finite distance (float64 accumulation cannot overflow for
    # finite float32 rows), so finiteness is read off the distances instead of another pass.
    dist = torch.linalg.vector_norm(v - own, dim=-1, dtype=torch.float64)  # (B, m)
    finite = torch.isfinite(dist)
    dist = torch.where(finite, dist, torch.full_like(dist, float("inf")))
    keep = torch.sort(dist, dim=-1, stable=True).indices[:, : m - f]  # (B, m - f)
    if not bool(torch.gather(finite, 1, keep).all()):
        raise ValueError(
            f"{int((~finite).sum(dim=1).max())} received vectors are non-finite, more than f={f}: "
            "the honest-majority assumption is broken"
        )
    picked = torch.gather(v, 1, keep.unsqueeze(-1).expand(-1, -1, v.shape[-1]))
    out = picked.mean(dim=1)
    return out[0] if single else out


@overload
def nna(vectors: np.ndarray, f: int, pivot: int) -> np.ndarray: ...
@overload
def nna(vectors: torch.Tensor, f: int, pivot: int) -> torch.Tensor: ...
def nna(vectors: np.ndarray | torch.Tensor, f: int, pivot: int) -> np.ndarray | torch.Tensor:
    """Nearest-neighbour averaging; dispatches to :func:`nna_torch` or :func:`nna_numpy`.

    .. math::  \\mathrm{NNA}_p(S) = \\tfrac{1}{m-f} \\sum_{j \\in N_p} v_j

    where :math:`N_p` holds the ``m - f`` vectors closest to ``vectors[pivot]`` (ties: lower index).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(vectors, torch.Tensor):
        return nna_torch(vectors, f, pivot)
    if isinstance(vectors, (np.ndarray, list, tuple)):
        return nna_numpy(np.asarray(vectors), f, pivot)
    raise TypeError(
        f"vectors must be a numpy array or a torch.Tensor, got {type(vectors).__name__}"
    )


def learning_rate(step: int, lr: float, lr_decay: float, lr_decay_delta: int) -> float:
    """The official schedule: :math:`\\gamma_t = \\gamma_0 / (t' / \\text{decay} + 1)`.

    :math:`t'` is the last multiple of ``lr_decay_delta`` not above ``step`` (the official code
    recomputes the rate only every ``lr_decay_delta`` steps). ``lr_decay <= 0`` keeps ``lr``.
    """
    if lr_decay <= 0:
        return lr
    t = (step // lr_decay_delta) * lr_decay_delta
    return lr / (t / lr_decay + 1.0)


def momentum_half_step(
    params: torch.Tensor, momentum: torch.Tensor, grad: torch.Tensor, *, lr: float, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local Polyak momentum (dampening = β, as the official scripts) and the half-step.

    .. math::

        m_i \\leftarrow \\beta m_i + (1 - \\beta) g_i, \\qquad
        x_i^{t + 1/2} = x_i - \\gamma_t m_i

    Works on one node ``(d,)`` or all nodes ``(H, d)``; returns new tensors (inputs untouched).
    """
    m = momentum * beta + grad * (1.0 - beta)
    return params - lr * m, m


def line_maximize(
    objective: Callable[[float], float],
    *,
    evals: int = 16,
    start: float = 0.0,
    delta: float = 1.0,
    ratio: float = 0.8,
) -> float:
    """Best-effort arg-max of ``objective`` on :math:`[0, \\infty)` (the official ``tools.line_maximize``).

    Expansion: step right by ``delta``, doubling it while the objective improves. Contraction:
    move the probe towards the best point by ``delta`` (kept non-negative), shrinking ``delta`` by
    ``ratio`` after every probe. ``evals`` evaluations in total.
    """
    if not isinstance(evals, int) or isinstance(evals, bool) or evals < 1:
        raise ValueError(f"evals must be a positive int, got {evals!r}")
    if not 0.5 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0.5, 1), got {ratio!r}")
    best_x = start
    best_y = objective(best_x)
    prop_x = best_x
    evals -= 1
    while evals > 0:
        prop_x = best_x + delta
        prop_y = objective(prop_x)
        evals -= 1
        if prop_y > best_y:
            best_x, best_y = prop_x, prop_y
            delta *= 2.0
        else:
            delta *= ratio
            break
    while evals > 0:
        if prop_x < best_x:
            prop_x += delta
        else:
            x = prop_x - delta
            while x < 0:
                x = (x + prop_x) / 2.0
            prop_x = x
        prop_y = objective(prop_x)
        evals -= 1
        if prop_y > best_y:
            best_x, best_y = prop_x, prop_y
        delta *= ratio
    return best_x


__all__ = [
    "learning_rate",
    "line_maximize",
    "momentum_half_step",
    "nna",
    "nna_numpy",
    "nna_torch",
]

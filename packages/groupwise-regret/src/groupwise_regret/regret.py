r"""Groupwise regret against the best fixed linear predictor in hindsight, per group, at checkpoints.

For a group :math:`g` with rounds :math:`t_1 < t_2 < \dots < t_{T_g}` and a learner with per-row
losses :math:`\ell_t`, the regret after the first :math:`n` rounds of the group is

.. math::

    \mathrm{Reg}_g(n) = \sum_{i \le n} \ell_{t_i}
        - \min_\theta \sum_{i \le n} \Big(\frac{\theta^\top x_{t_i} - y_{t_i}}{y_{hi} - y_{lo}}\Big)^2 ,

the official evaluation's comparator (``comparator="ols"``: the unregularised least-squares fit,
minimum-norm when the group's features are rank-deficient, as the official ``scipy.linalg.lstsq``;
computed incrementally from a QR factor, see :func:`_prefix_best_losses`). ``comparator="ridge"`` uses the ridge objective
:math:`\min_\theta \|X\theta - y\|^2 + \alpha\|\theta\|^2` instead (the comparator of the
follow-the-regularised-leader bound). Both are measured on the *same* :math:`n` rows (the official
code pairs the cumulative loss of :math:`n+1` rows with the fit on :math:`n`; not copied).
Checkpoints default to 100 evenly spaced counts per group, as in the paper's curves and tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

__all__ = ["GroupRegret", "best_fixed_loss", "checkpoint_counts", "groupwise_regret"]


@dataclass(frozen=True)
class GroupRegret:
    """Regret curve of one group.

    Attributes:
        name: the group's name.
        size: :math:`T_g`, the number of rounds where the group is active.
        counts: checkpoints: numbers of the group's rounds seen, increasing, ending at ``size``.
        cumulative_loss: the learner's cumulative loss on the group's first ``counts`` rounds.
        comparator_loss: the best fixed linear predictor's loss on the same rounds.
        regret: ``cumulative_loss - comparator_loss``.
    """

    name: str
    size: int
    counts: IntArray
    cumulative_loss: FloatArray
    comparator_loss: FloatArray
    regret: FloatArray

    @property
    def final(self) -> float:
        """Regret after all of the group's rounds (the number in the paper's tables)."""
        return float(self.regret[-1]) if self.regret.size else 0.0


def checkpoint_counts(size: int, checkpoints: int) -> IntArray:
    """``min(checkpoints, size)`` evenly spaced counts in ``[1, size]``, ending at ``size``."""
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(checkpoints, size)
    counts = np.unique(np.round(np.linspace(size / k, size, k)).astype(np.int64))
    return np.asarray(np.clip(counts, 1, size), dtype=np.int64)


def best_fixed_loss(
    X: ArrayLike,
    y: ArrayLike,
    *,
    comparator: Literal["ols", "ridge"] = "ols",
    alpha: float = 1.0,
    scale: float = 1.0,
) -> float:
    r"""Loss of the best fixed linear predictor on ``(X, y)``: :math:`\min_\theta \|X\theta - y\|^2`
    (``"ols"``, minimum-norm least squares) or the ridge objective (``"ridge"``), over ``scale**2``.

    Computed directly with ``numpy.linalg.lstsq``; :func:`groupwise_regret` uses the equivalent
    incremental form :func:`_prefix_best_losses`."""
    Xa = np.asarray(X, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if comparator == "ridge":
        d = Xa.shape[1]
        Xa = np.vstack([Xa, np.sqrt(alpha) * np.eye(d)])
        ya = np.concatenate([ya, np.zeros(d)])
    theta = np.linalg.lstsq(Xa, ya, rcond=None)[0]
    r = Xa @ theta - ya
    return float(r @ r) / scale**2


def _prefix_best_losses(
    X: FloatArray, y: FloatArray, counts: IntArray, *, comparator: str, alpha: float
) -> FloatArray:
    r"""Best fixed linear loss on the first ``c`` rows for every ``c`` in ``counts`` (increasing).

    Keeps the triangular factor :math:`R` of the QR decomposition of the augmented prefix
    :math:`Z = [X \mid y]` (updated block by block: :math:`R \leftarrow \mathrm{qr}([R; Z_{new}])`).
    Since :math:`\|X\theta - y\|^2 = \|R_{11}\theta - r\|^2 + \rho^2` for
    :math:`R = \begin{pmatrix} R_{11} & r \\ 0 & \rho\end{pmatrix}`, the minimum is
    :math:`\rho^2` plus the residual of the small minimum-norm least-squares problem in
    :math:`(R_{11}, r)` (rank-deficient groups included). For ``"ridge"`` the rows
    :math:`[\sqrt{\alpha} I \mid 0]` start the factor. :math:`O(T_g d^2)` in all.
    """
    d = X.shape[1]
    Z = np.column_stack([X, y])
    if comparator == "ridge":
        R = np.column_stack([np.sqrt(alpha) * np.eye(d), np.zeros(d)])
    else:
        R = np.zeros((0, d + 1))
    out = np.empty(counts.size)
    prev = 0
    full = np.zeros((d + 1, d + 1))
    for k, c in enumerate(counts):
        R = np.asarray(np.linalg.qr(np.vstack([R, Z[prev:c]]), mode="r"))
        prev = int(c)
        full[:] = 0.0
        full[: R.shape[0]] = R[: d + 1]
        R11, r, rho = full[:d, :d], full[:d, d], full[d, d]
        theta = np.linalg.lstsq(R11, r, rcond=None)[0]
        res = R11 @ theta - r
        out[k] = float(res @ res) + rho * rho
    return out


def groupwise_regret(
    X: ArrayLike,
    y: ArrayLike,
    losses: ArrayLike,
    membership: ArrayLike,
    *,
    group_names: Sequence[str] | None = None,
    checkpoints: int = 100,
    comparator: Literal["ols", "ridge"] = "ols",
    alpha: float = 1.0,
    y_range: tuple[float, float] = (0.0, 1.0),
) -> dict[str, GroupRegret]:
    """Per-group regret curves of a learner whose per-row (squared, scaled) losses are ``losses``.

    Args:
        X: features ``(n, d)`` in stream order (those the comparator may use).
        y: labels ``(n,)``.
        losses: the learner's loss on each row ``(n,)``, on the scale of ``y_range``
            (e.g. :attr:`StreamRecord.expected_loss` or :attr:`StreamRecord.loss`).
        membership: boolean ``(n, G)``.
        group_names: ``G`` names (default ``g0, g1, ...``).
        checkpoints: number of checkpoints per group (>= 1).
        comparator: ``"ols"`` (official) or ``"ridge"``.
        alpha: ridge penalty for ``comparator="ridge"``.
        y_range: ``(low, high)``; the comparator's squared loss is divided by ``(high - low)**2``.

    Returns:
        ``{name: GroupRegret}`` in column order.
    """
    Xa = np.asarray(X, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    la = np.asarray(losses, dtype=np.float64)
    A = np.asarray(membership)
    if Xa.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {Xa.shape}")
    n = Xa.shape[0]
    if ya.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {ya.shape}")
    if la.shape != (n,):
        raise ValueError(f"losses must have shape ({n},), got {la.shape}")
    if A.ndim != 2 or A.shape[0] != n:
        raise ValueError(f"membership must have shape ({n}, n_groups), got {A.shape}")
    if A.dtype != np.bool_:
        if A.dtype.kind not in "iuf" or not np.all((A == 0) | (A == 1)):
            raise ValueError("membership must hold only booleans or 0/1")
        A = A.astype(bool)
    for arg, v in (("X", Xa), ("y", ya), ("losses", la)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{arg} must be finite (found NaN or inf)")
    names = (
        tuple(group_names) if group_names is not None else tuple(f"g{i}" for i in range(A.shape[1]))
    )
    if len(names) != A.shape[1]:
        raise ValueError(f"group_names has {len(names)} names for {A.shape[1]} membership columns")
    if (
        isinstance(checkpoints, bool)
        or not isinstance(checkpoints, (int, np.integer))
        or checkpoints < 1
    ):
        raise ValueError(f"checkpoints must be a positive int, got {checkpoints!r}")
    if comparator not in ("ols", "ridge"):
        raise ValueError(f"comparator must be 'ols' or 'ridge', got {comparator!r}")
    if comparator == "ridge" and not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"alpha must be positive for comparator='ridge', got {alpha!r}")
    lo, hi = (float(v) for v in y_range)
    if not hi > lo:
        raise ValueError(f"y_range must have low < high, got {y_range!r}")
    out: dict[str, GroupRegret] = {}
    for j, name in enumerate(names):
        rows = np.flatnonzero(A[:, j])
        counts = checkpoint_counts(rows.size, int(checkpoints))
        cum = np.cumsum(la[rows])
        Xg, yg = Xa[rows], ya[rows]
        comp = (
            _prefix_best_losses(Xg, yg, counts, comparator=comparator, alpha=float(alpha))
            / (hi - lo) ** 2
        )
        cl = cum[counts - 1] if counts.size else np.zeros(0)
        out[name] = GroupRegret(name, int(rows.size), counts, cl, comp, cl - comp)
    return out

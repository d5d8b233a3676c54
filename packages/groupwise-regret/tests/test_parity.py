"""Parity with an independent step-by-step reference of the official update (<= 1e-12).

The reference follows the equations of the official Adanormal_sleepingexps with
Manual_inv_LinearExpert: direct exponentials, column-vector Sherman–Morrison, theta = P b,
squared loss of unclipped predictions. Written from the equations, not copied."""

from __future__ import annotations

import numpy as np
import pytest
from groupwise_regret import GroupwiseRegressor, OnlineRidge


def reference_run(
    X: np.ndarray, y: np.ndarray, A: np.ndarray, l2_pen: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (p_t per round (T, N), expected loss per round (T,), expert losses (T, N))."""
    T, N = A.shape
    d = X.shape[1]
    inv = [np.identity(d) / l2_pen for _ in range(N)]
    bsum = [np.zeros(d) for _ in range(N)]
    theta = [np.zeros(d) for _ in range(N)]
    R, C = np.zeros(N), np.zeros(N)
    P_hist, lhat_hist, L_hist = np.zeros((T, N)), np.zeros(T), np.zeros((T, N))
    for t in range(T):
        a = A[t].astype(float)
        if np.all(a == 0):
            p = np.ones(N) / N
        else:
            D = 3.0 * (C + 1.0)
            w = 0.5 * (
                np.exp(np.clip(R + 1.0, 0.0, None) ** 2 / D)
                - np.exp(np.clip(R - 1.0, 0.0, None) ** 2 / D)
            )
            v = w * a
            p = a / a.sum() if np.all(v == 0) else v / v.sum()
        losses = np.zeros(N)
        for g in range(N):
            if a[g]:
                pred = float(X[t] @ theta[g])
                losses[g] = (pred - y[t]) ** 2
                col = X[t].reshape(-1, 1)
                inv[g] = inv[g] - (inv[g] @ col @ col.T @ inv[g]) / (
                    1.0 + (col.T @ inv[g] @ col).item()
                )
                bsum[g] = bsum[g] + y[t] * X[t]
                theta[g] = inv[g] @ bsum[g]
        lhat = float(p @ losses)
        r = (lhat - losses) * a
        R, C = R + r, C + np.abs(r)
        P_hist[t], lhat_hist[t], L_hist[t] = p, lhat, losses
    return P_hist, lhat_hist, L_hist


def _data(
    rng: np.random.Generator, T: int, d: int, G: int, p_active: float
) -> tuple[np.ndarray, ...]:
    X = rng.uniform(0, 1, size=(T, d))
    A = rng.random((T, G)) < p_active
    W = rng.uniform(0, 1, size=(d, G))
    y = np.where(A, X @ W, 0).sum(axis=1) / np.maximum(A.sum(axis=1), 1)
    y = (y - y.min()) / (y.max() - y.min())
    return X, y, A


@pytest.mark.parametrize("chunks", [1, 7])
def test_matches_reference_with_always_on(rng: np.random.Generator, chunks: int) -> None:
    X, y, A = _data(rng, 2000, 8, 3, 0.4)
    A_full = np.concatenate([A, np.ones((2000, 1), dtype=bool)], axis=1)
    P_ref, lhat_ref, L_ref = reference_run(X, y, A_full)
    est = GroupwiseRegressor(OnlineRidge(alpha=1.0), clip=False)
    recs = [
        est.partial_fit_predict(Xc, yc, Ac)
        for Xc, yc, Ac in zip(*(np.array_split(v, chunks) for v in (X, y, A)))
    ]
    weights = np.concatenate([r.weights for r in recs])
    lhat = np.concatenate([r.expected_loss for r in recs])
    L = np.concatenate([np.nan_to_num(r.expert_loss) for r in recs])
    np.testing.assert_allclose(weights, P_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lhat, lhat_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(L, L_ref, rtol=0, atol=1e-12)


def test_matches_reference_with_empty_rounds(rng: np.random.Generator) -> None:
    """No always-on group: rounds with no active group give uniform p, zero loss, no update."""
    X, y, A = _data(rng, 800, 5, 4, 0.3)
    assert (~A.any(axis=1)).sum() > 50
    P_ref, lhat_ref, _ = reference_run(X, y, A, l2_pen=2.0)
    rec = GroupwiseRegressor(
        OnlineRidge(alpha=2.0), always_on=False, clip=False
    ).partial_fit_predict(X, y, A)
    np.testing.assert_allclose(rec.weights, P_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec.expected_loss, lhat_ref, rtol=0, atol=1e-12)

"""Sample-quality metrics for the guidance demos (numpy; inputs are (N, D) arrays or tensors).

- :func:`out_of_range_fraction`: share of coordinates outside ``[-bound, bound]`` (oversaturation).
- :func:`norm_ratio`: mean sample norm over mean reference norm (contrast / radius inflation).
- :func:`frechet_distance`: Fréchet distance of Gaussian fits, optionally in a PCA space of the
  reference (a FID proxy for tiny data).
- :func:`precision_recall`: k-NN precision and recall (Kynkäänniemi et al., 2019).
- :func:`knn_accuracy`: class accuracy of samples under a k-NN classifier fitted on real data.
- :func:`within_class_spread`: mean per-class standard deviation (a diversity proxy).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _arr(name: str, x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}")
    return a.reshape(a.shape[0], -1)


def out_of_range_fraction(x: Any, bound: float = 1.0) -> float:
    """Fraction of all coordinates with ``|x| > bound``."""
    a = _arr("x", x)
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    return float(np.mean(np.abs(a) > bound))


def norm_ratio(x: Any, reference: Any) -> float:
    """``mean ||x_i|| / mean ||ref_j||``: above 1 means inflated samples."""
    a, r = _arr("x", x), _arr("reference", reference)
    return float(np.linalg.norm(a, axis=1).mean() / np.linalg.norm(r, axis=1).mean())


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    out: np.ndarray = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return out


def frechet_distance(x: Any, reference: Any, *, pca_components: int | None = None) -> float:
    """Fréchet distance between Gaussian fits of ``x`` and ``reference``.

    .. math:: \\lVert \\mu_x - \\mu_r \\rVert^2 + \\operatorname{tr}\\bigl(C_x + C_r - 2 (C_r^{1/2} C_x C_r^{1/2})^{1/2}\\bigr)

    With ``pca_components`` both sets are first projected on the reference's leading principal
    axes. Symmetric square roots use ``eigh`` (no complex round-off).
    """
    a, r = _arr("x", x), _arr("reference", reference)
    if a.shape[1] != r.shape[1]:
        raise ValueError(
            f"x and reference must have the same width, got {a.shape[1]} and {r.shape[1]}"
        )
    if pca_components is not None:
        if not 1 <= pca_components <= r.shape[1]:
            raise ValueError(f"pca_components must be in [1, {r.shape[1]}], got {pca_components!r}")
        mu = r.mean(0)
        _, _, vt = np.linalg.svd(r - mu, full_matrices=False)
        basis = vt[:pca_components].T
        a, r = (a - mu) @ basis, (r - mu) @ basis
    mu_a, mu_r = a.mean(0), r.mean(0)
    ca = np.atleast_2d(np.cov(a, rowvar=False))
    cr = np.atleast_2d(np.cov(r, rowvar=False))
    sr = _sqrtm_psd(cr)
    cross = _sqrtm_psd(sr @ ca @ sr)
    return float(np.sum((mu_a - mu_r) ** 2) + np.trace(ca) + np.trace(cr) - 2.0 * np.trace(cross))


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(
        (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0
    )
    return out


def _kth_radius(a: np.ndarray, k: int) -> np.ndarray:
    d = _sqdist(a, a)
    out: np.ndarray = np.sqrt(np.sort(d, axis=1)[:, k])
    return out  # column 0 is the point itself


def precision_recall(x: Any, reference: Any, *, k: int = 3) -> tuple[float, float]:
    """k-NN precision (samples inside the reference manifold) and recall (the converse).

    A point lies inside a set's manifold when it falls in a ball around some member whose radius
    is that member's distance to its ``k``-th nearest neighbour within the set.
    """
    a, r = _arr("x", x), _arr("reference", reference)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < min(len(a), len(r)):
        raise ValueError(f"k must be an int in [1, {min(len(a), len(r)) - 1}], got {k!r}")
    ra, rr = _kth_radius(a, k), _kth_radius(r, k)
    d = np.sqrt(_sqdist(a, r))  # (Na, Nr)
    precision = float(np.mean((d <= rr[None, :]).any(axis=1)))
    recall = float(np.mean((d <= ra[:, None]).any(axis=0)))
    return precision, recall


def knn_accuracy(
    x: Any, labels: Any, reference: Any, reference_labels: Any, *, k: int = 5
) -> float:
    """Accuracy of a majority-vote ``k``-NN classifier fitted on ``reference`` at predicting ``labels``."""
    a, r = _arr("x", x), _arr("reference", reference)
    y, yr = np.asarray(labels).reshape(-1), np.asarray(reference_labels).reshape(-1)
    if len(y) != len(a) or len(yr) != len(r):
        raise ValueError(
            "labels must have one entry per sample, and reference_labels one per reference row"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(r):
        raise ValueError(f"k must be an int in [1, {len(r)}], got {k!r}")
    nn_idx = np.argsort(_sqdist(a, r), axis=1)[:, :k]
    votes = yr[nn_idx]
    n_cls = int(max(yr.max(), y.max())) + 1
    counts = np.stack([(votes == c).sum(1) for c in range(n_cls)], axis=1)
    return float(np.mean(counts.argmax(1) == y))


def within_class_spread(x: Any, labels: Any) -> float:
    """Mean over classes of the root-mean-square distance of samples to their class centroid."""
    a = _arr("x", x)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(a):
        raise ValueError(f"labels must have {len(a)} entries, got {len(y)}")
    out = []
    for c in np.unique(y):
        g = a[y == c]
        out.append(np.sqrt(((g - g.mean(0)) ** 2).sum(1).mean()))
    return float(np.mean(out))


__all__ = [
    "frechet_distance",
    "knn_accuracy",
    "norm_ratio",
    "out_of_range_fraction",
    "precision_recall",
    "within_class_spread",
]

"""The exact denoiser of an isotropic Gaussian mixture: a training-free test oracle.

For data :math:`x_0 \\sim \\sum_k \\pi_k \\mathcal N(\\mu_k, s^2 I)` and :math:`x = x_0 + \\sigma\\varepsilon`,
the posterior mean is closed form:

.. math::

    D(x, \\sigma, y) = \\sum_{k \\in K_y} w_k(x)\\Bigl[\\mu_k + \\frac{s^2}{s^2 + \\sigma^2}(x - \\mu_k)\\Bigr],
    \\qquad w_k(x) \\propto \\pi_k\\, \\mathcal N\\bigl(x; \\mu_k, (s^2 + \\sigma^2) I\\bigr),

where :math:`K_y` are the components of class ``y`` (all components for the unconditional
prediction, label :data:`~apg_guidance.sampling.NULL_LABEL`). With one component per training
point and small ``s`` this is the "smoothed empirical" denoiser of a data set.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from papershelf.data import gaussian_mixture


class GaussianMixtureDenoiser:
    """Exact class-conditional denoiser of an isotropic Gaussian mixture.

    Args:
        means: component means, shape (K, D).
        std: the components' standard deviation ``s`` (> 0).
        component_labels: class of each component, int shape (K,); default ``arange(K)``.
        weights: mixture weights :math:`\\pi_k` (K,), non-negative, summing to 1; default uniform.
        dtype: dtype of the computation (float64 by default: the oracle is exact).
    """

    def __init__(
        self,
        means: np.ndarray | torch.Tensor,
        std: float,
        *,
        component_labels: np.ndarray | torch.Tensor | None = None,
        weights: np.ndarray | torch.Tensor | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        mu = torch.as_tensor(np.asarray(means), dtype=dtype)
        if mu.ndim != 2 or mu.shape[0] < 1:
            raise ValueError(f"means must have shape (K, D) with K >= 1, got {tuple(mu.shape)}")
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ValueError(f"std must be a positive number, got {std!r}")
        k = mu.shape[0]
        lab = (
            torch.arange(k)
            if component_labels is None
            else torch.as_tensor(np.asarray(component_labels)).long()
        )
        if lab.shape != (k,) or bool((lab < 0).any()):
            raise ValueError(
                f"component_labels must be {k} non-negative ints, got shape {tuple(lab.shape)}"
            )
        if weights is None:
            w = torch.full((k,), 1.0 / k, dtype=dtype)
        else:
            w = torch.as_tensor(np.asarray(weights), dtype=dtype)
            if w.shape != (k,) or bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-8:
                raise ValueError(f"weights must be {k} non-negative numbers summing to 1")
        self.means = mu
        self.std = float(std)
        self.component_labels = lab
        self.log_weights = torch.log(w)
        self.n_classes = int(lab.max()) + 1
        self.dtype = dtype
        self._sq_means = (mu * mu).sum(1)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Posterior mean ``E[x0 | x, sigma, class]``; labels of -1 give the unconditional mean."""
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"x must have shape (B, {self.means.shape[1]}), got {tuple(x.shape)}")
        xd = x.to(self.dtype)
        var = self.std**2 + sigma.to(self.dtype).reshape(-1, 1) ** 2  # (B, 1)
        sq = (xd * xd).sum(1, keepdim=True) - 2.0 * xd @ self.means.T + self._sq_means  # (B, K)
        logits = self.log_weights - 0.5 * sq / var
        allowed = (labels.reshape(-1, 1) < 0) | (labels.reshape(-1, 1) == self.component_labels)
        logits = logits.masked_fill(~allowed, -math.inf)
        resp = torch.softmax(logits, dim=1)
        mean_mu = resp @ self.means
        shrink = self.std**2 / var
        return (mean_mu + shrink * (xd - mean_mu)).to(x.dtype)

    def sample_data(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact draws ``(x0, class)`` from the mixture."""
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], dtype=self.dtype, generator=generator)
        return self.means[comp] + self.std * noise, self.component_labels[comp]


def ring_mixture(
    n_classes: int = 8, *, radius: float = 2.0, std: float = 0.35
) -> GaussianMixtureDenoiser:
    """``n_classes`` equally spaced 2-D Gaussians on a circle: radial inflation there is oversaturation."""
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixtureDenoiser(means, std)


def pixel_mixture(
    n_classes: int = 10,
    n_features: int = 64,
    *,
    std: float = 0.5,
    mean_scale: float = 0.3,
    seed: int = 0,
) -> GaussianMixtureDenoiser:
    """A 64-D "image" mixture in roughly [-1, 1]: class means from :func:`papershelf.data.gaussian_mixture`.

    Means lie on a sphere of radius ``mean_scale * sqrt(n_features)`` (about ``mean_scale`` per
    pixel); with ``std = 0.5`` about 8% of data pixels fall outside [-1, 1].
    """
    _, _, means = gaussian_mixture(
        1,
        n_components=n_classes,
        n_features=n_features,
        separation=mean_scale * math.sqrt(n_features),
        seed=seed,
    )
    return GaussianMixtureDenoiser(means, std)


__all__ = ["GaussianMixtureDenoiser", "pixel_mixture", "ring_mixture"]

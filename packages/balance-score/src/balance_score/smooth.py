"""Smooth ECE (Błasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams via Kernel
Smoothing", ICLR 2024), binning-free, with its automatic bandwidth.

With residuals :math:`r_i = s_i - o_i` (score minus outcome) and a Gaussian kernel
:math:`K_\\sigma` reflected at 0 and 1, the smoothed residual and score density are

.. math::

    \\hat r(t) = \\frac{\\sum_i K_\\sigma(t, s_i) r_i}{\\sum_i K_\\sigma(t, s_i)}, \\qquad
    \\hat\\delta(t) \\propto \\sum_i K_\\sigma(t, s_i), \\qquad
    \\mathrm{smECE}_\\sigma = \\int_0^1 |\\hat r(t)|\\,\\hat\\delta(t)\\,dt .

The automatic bandwidth is the fixed point :math:`\\sigma^* = \\mathrm{smECE}_{\\sigma^*}`, found
by bisection on [0, 1]. The discretisation follows the authors' ``relplot`` package exactly
(linear deposit of the samples on a grid of ``max(2000, 20/σ)//2 + 1`` points, the kernel sampled
on the same grid and reflected once at each end, linear interpolation to a mesh of
``max(200, 10/σ)`` points, ``1e-4`` added to the density, 10 bisection steps starting at σ = 1),
so the values agree with ``relplot.smECE`` to rounding; the convolution here uses an FFT.
With ``sample_weight`` every kernel sum is weighted (see :func:`smooth_calibration_error`).
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

from balance_score._binning import scores_and_residuals
from balance_score._validation import check_binary, check_choice

FloatArray = NDArray[np.float64]

_MESH = 200
_DENSITY_EPS = 1e-4
_REFINE = 10


def _fft_convolve_valid(x: FloatArray, k: FloatArray) -> FloatArray:
    """``numpy.convolve(x, k, "valid")`` through a real FFT."""
    n = x.shape[0] + k.shape[0] - 1
    size = 1 << (n - 1).bit_length()
    full = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(k, size), size)[:n]
    return full[k.shape[0] - 1 : x.shape[0]]


def _smooth_on_grid(
    s: FloatArray, values: tuple[FloatArray, ...], sigma: float, t: FloatArray
) -> list[FloatArray]:
    """Reflected-Gaussian kernel sums Σ_i K_σ(t, s_i) v_i at the points t, for each v."""
    e = max(2000, round(20 / sigma)) // 2 + 1
    pos = s * (e - 1)
    lo = pos.astype(np.intp).clip(0, e - 2)
    frac = pos - lo
    grid = np.linspace(0.0, 1.0, e)
    kernel = np.exp(-((grid - 0.5) ** 2) / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)
    at = (t * (e - 1)).astype(np.intp).clip(0, e - 2)
    step = 1.0 / (e - 1)
    res = (t - at * step) / step
    out = []
    for v in values:
        dep = np.bincount(lo, weights=(1 - frac) * v, minlength=e) + np.bincount(
            lo + 1, weights=frac * v, minlength=e
        )
        ext = np.concatenate([dep[::-1][:-1], dep, dep[::-1][1:]])
        sm = _fft_convolve_valid(ext, kernel)[e // 2 : e // 2 + e]
        out.append(sm[at] * (1 - res) + sm[at + 1] * res)
    return out


def _smece_at(s: FloatArray, r: FloatArray, sigma: float, w: FloatArray | None = None) -> float:
    t = np.linspace(0.0, 1.0, max(round(10 / sigma), _MESH))
    values = (r, np.ones_like(s)) if w is None else (w * r, w)
    num, den = _smooth_on_grid(s, values, sigma, t)
    den = den + _DENSITY_EPS
    return float(np.sum(np.abs(num / den) * den) / np.sum(den))


def _auto_sigma(s: FloatArray, r: FloatArray, eps: float, w: FloatArray | None = None) -> float:
    def below_fixed_point(sigma: float) -> bool:
        return sigma < eps or sigma < _smece_at(s, r, sigma, w)

    if below_fixed_point(1.0):
        return 1.0
    hi, lo = 1.0, 0.0
    for _ in range(_REFINE):
        mid = (hi + lo) / 2
        if below_fixed_point(mid):
            lo = mid
        else:
            hi = mid
    return hi


@overload
def smooth_calibration_error(
    y_true: Any,
    y_prob: Any,
    *,
    sigma: float | None = ...,
    mode: str = ...,
    pos_label: Any = ...,
    eps: float = ...,
    sample_weight: Any = ...,
    return_sigma: Literal[False] = ...,
) -> float: ...
@overload
def smooth_calibration_error(
    y_true: Any,
    y_prob: Any,
    *,
    sigma: float | None = ...,
    mode: str = ...,
    pos_label: Any = ...,
    eps: float = ...,
    sample_weight: Any = ...,
    return_sigma: Literal[True],
) -> tuple[float, float]: ...
def smooth_calibration_error(
    y_true: Any,
    y_prob: Any,
    *,
    sigma: float | None = None,
    mode: str = "positive",
    pos_label: Any = None,
    eps: float = 1e-3,
    sample_weight: Any = None,
    return_sigma: bool = False,
) -> float | tuple[float, float]:
    """Smooth ECE (smECE) of a binary classifier.

    Args:
        y_true, y_prob, pos_label: as in :func:`balance_score.balance_score`.
        sigma: kernel bandwidth in (0, 1]; ``None`` (default) picks the fixed point
            σ* = smECE_σ* by 10 bisection steps, as the authors' ``relplot.smECE`` does.
        mode: ``"positive"`` or ``"top_label"`` (see :mod:`balance_score.calibration`).
        eps: bandwidths below ``eps`` count as below the fixed point (``relplot`` default).
        sample_weight: optional non-negative weights: every kernel sum becomes weighted,
            :math:`\\hat r(t) = \\sum_i w_i K_\\sigma(t, s_i) r_i / \\sum_i w_i K_\\sigma(t, s_i)` and
            :math:`\\hat\\delta(t) \\propto \\sum_i w_i K_\\sigma(t, s_i)`, with the weights rescaled to
            mean 1 first, so ``relplot``'s density floor (1e-4, in units of samples) keeps its
            meaning and the result does not depend on the weights' scale. Unit weights give
            exactly the unweighted value; an integer weight k acts like k copies of the sample
            (up to that floor).
        return_sigma: also return the bandwidth used.

    Returns:
        smECE, or ``(smECE, sigma)`` with ``return_sigma=True``.
    """
    check_choice(mode, "mode", ("positive", "top_label"))
    if sigma is not None and (
        isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating))
    ):
        raise TypeError(f"sigma must be a float in (0, 1] or None, got {sigma!r}")
    if sigma is not None and not 0.0 < float(sigma) <= 1.0:
        raise ValueError(f"sigma must lie in (0, 1], got {sigma!r}")
    if (
        isinstance(eps, bool)
        or not isinstance(eps, (int, float, np.floating))
        or not 0.0 <= float(eps) < 1.0
    ):
        raise ValueError(f"eps must be a float in [0, 1), got {eps!r}")
    y, q, w = check_binary(y_true, y_prob, pos_label=pos_label, sample_weight=sample_weight)
    if w is not None:
        w = w * (w.shape[0] / float(w.sum()))  # mean 1 (unit weights stay exactly 1)
    s, r = scores_and_residuals(y, q, mode)
    r = -r  # score minus outcome, as in relplot (only |.| matters)
    bw = float(sigma) if sigma is not None else _auto_sigma(s, r, float(eps), w)
    value = _smece_at(s, r, bw, w)
    return (value, bw) if return_sigma else value


__all__ = ["smooth_calibration_error"]

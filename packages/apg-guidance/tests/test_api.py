"""Stateful API, conversions, samplers, the analytic denoiser, metrics, lazy import."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, cast

import numpy as np
import pytest
import torch
from apg_guidance import (
    AdaptiveProjectedGuidance,
    ClassifierFreeGuidance,
    GaussianMixtureDenoiser,
    apg,
    edm_sigmas,
    from_x0,
    ring_mixture,
    sample,
    to_x0,
)
from apg_guidance import metrics as M
from apg_guidance.parameterization import PredictionType


def _steps(
    n: int, shape: tuple[int, ...] = (2, 3, 4, 4), seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(shape, generator=g, dtype=torch.float64),
            torch.randn(shape, generator=g, dtype=torch.float64),
        )
        for _ in range(n)
    ]


def test_class_equals_functional_and_reset_restores_first_step() -> None:
    kw: dict[str, Any] = {"eta": 0.1, "norm_threshold": 3.0, "momentum": -0.6}
    guide = AdaptiveProjectedGuidance(7.0, **kw)
    state = None
    data = _steps(5)
    for c, u in data:
        ref, state = apg(c, u, 7.0, state=state, **kw)
        torch.testing.assert_close(guide(c, u), ref, rtol=0, atol=0)
    assert guide.steps == 5
    guide.reset()
    first, _ = apg(*data[0], 7.0, **kw)
    torch.testing.assert_close(guide(*data[0]), first, rtol=0, atol=0)


def test_sigma_increase_starts_a_new_run() -> None:
    guide = AdaptiveProjectedGuidance(5.0, momentum=-0.5)
    data = _steps(3)
    first = guide(*data[0], sigma=10.0)
    guide(*data[1], sigma=5.0)
    again = guide(*data[0], sigma=80.0)  # sigma went up: a new run
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    manual = AdaptiveProjectedGuidance(5.0, momentum=-0.5, reset_on_sigma_increase=False)
    manual(*data[0], sigma=10.0)
    manual(*data[1], sigma=5.0)
    assert (manual(*data[0], sigma=80.0) - first).abs().max() > 1e-3


def test_batch_change_mid_run_raises() -> None:
    guide = AdaptiveProjectedGuidance(5.0, momentum=-0.5)
    ((c, u),) = _steps(1)
    guide(c, u)
    with pytest.raises(ValueError, match="batch shape changed"):
        guide(c[:1], u[:1])


@pytest.mark.parametrize("ptype", ["sample", "epsilon", "v", "flow"])
def test_x0_round_trip_and_closed_forms(ptype: str) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    alpha, sigma = (
        torch.tensor([0.9, 0.5, 0.2, 0.99], dtype=torch.float64),
        torch.tensor([0.3, 0.8, 0.95, 0.05], dtype=torch.float64),
    )
    if ptype == "flow":
        alpha = 1 - sigma
    if ptype == "v":
        alpha = torch.sqrt(1 - sigma**2)
    a, s = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
    xt = a * x0 + s * eps
    out = {"sample": x0, "epsilon": eps, "v": a * eps - s * x0, "flow": eps - x0}[ptype]
    pt = cast(PredictionType, ptype)
    torch.testing.assert_close(to_x0(out, xt, prediction_type=pt, sigma=sigma, alpha=alpha), x0)
    torch.testing.assert_close(from_x0(x0, xt, prediction_type=pt, sigma=sigma, alpha=alpha), out)


def test_rectified_flow_shortcut() -> None:
    xt, v = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(
        to_x0(v, xt, prediction_type="flow", sigma=0.3, alpha=0.7), xt - 0.3 * v
    )


def test_guidance_in_x0_space_for_epsilon_models() -> None:
    g = torch.Generator().manual_seed(5)
    xt = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    e_c, e_u = (
        torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64),
    )
    guide = AdaptiveProjectedGuidance(6.0, norm_threshold=2.0, prediction_type="epsilon")
    out = guide(e_c, e_u, 0.7, sample=xt, alpha=0.6)
    d_c, d_u = (to_x0(e, xt, prediction_type="epsilon", sigma=0.7, alpha=0.6) for e in (e_c, e_u))
    d_hat, _ = apg(d_c, d_u, 6.0, norm_threshold=2.0)
    torch.testing.assert_close(
        out, from_x0(d_hat, xt, prediction_type="epsilon", sigma=0.7, alpha=0.6)
    )
    with pytest.raises(ValueError, match="needs sample"):
        guide(e_c, e_u)


def test_edm_sigmas() -> None:
    s = edm_sigmas(18)
    assert (
        s.shape == (19,)
        and float(s[0]) == pytest.approx(80.0)
        and float(s[-2]) == pytest.approx(0.002)
        and float(s[-1]) == 0.0
    )
    assert bool((s[:-1] > s[1:]).all())


def test_mixture_denoiser_single_component_closed_form() -> None:
    mu = np.array([[1.0, -2.0, 0.5]])
    den = GaussianMixtureDenoiser(mu, 0.4)
    x = torch.randn(5, 3, dtype=torch.float64)
    sigma = torch.full((5,), 1.3, dtype=torch.float64)
    expected = torch.as_tensor(mu) + 0.16 / (0.16 + 1.69) * (x - torch.as_tensor(mu))
    torch.testing.assert_close(den(x, sigma, torch.zeros(5, dtype=torch.long)), expected)
    torch.testing.assert_close(den(x, sigma, torch.full((5,), -1)), expected)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampler_recovers_the_ring(method: str) -> None:
    den = ring_mixture()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(800, 2, generator=g, dtype=torch.float64)
    labels = torch.arange(800) % 8
    x = sample(den, noise, labels, steps=32 if method == "euler" else 16, method=method)  # type: ignore[arg-type]
    data, _ = den.sample_data(4000, generator=g)
    assert abs(float(x.norm(dim=1).mean()) - float(data.norm(dim=1).mean())) < 0.05
    ang = torch.atan2(x[:, 1], x[:, 0])
    cls = torch.remainder(torch.round(ang / (2 * np.pi / 8)), 8).long()
    assert float((cls == labels).double().mean()) > 0.9


def test_sampler_resets_guidance_and_is_deterministic() -> None:
    den = ring_mixture()
    noise = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.arange(200) % 8
    guide = AdaptiveProjectedGuidance(7.0, momentum=-0.5, reset_on_sigma_increase=False)
    a = sample(den, noise, labels, guidance=guide, steps=12)
    b = sample(den, noise, labels, guidance=guide, steps=12)  # momentum must not leak across runs
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    cfg_x = sample(den, noise, labels, guidance=ClassifierFreeGuidance(7.0), steps=12)
    assert (
        float(cfg_x.norm(dim=1).mean()) > float(a.norm(dim=1).mean()) + 0.5
    )  # CFG inflates the radius


def test_frechet_distance_closed_form() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = rng.standard_normal((20000, 3)) * 2.0 + 1.0
    # N(0, I) vs N(1, 4I): |mu|^2 + tr(I + 4I - 2*2I) = 3 + 3
    assert M.frechet_distance(a, b) == pytest.approx(6.0, abs=0.15)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert M.frechet_distance(a, b, pca_components=2) < M.frechet_distance(a, b)


def test_other_metrics() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4))
    assert M.precision_recall(x, x) == (1.0, 1.0)
    p, _ = M.precision_recall(x + 10.0, x)
    assert p == 0.0
    assert M.out_of_range_fraction(np.array([[0.5, 1.5, -2.0, 1.0]])) == 0.5
    assert M.norm_ratio(2 * x, x) == pytest.approx(2.0)
    y = (x[:, 0] > 0).astype(int)
    assert M.knn_accuracy(x, y, x, y, k=1) == 1.0
    assert M.within_class_spread(np.zeros((4, 2)), np.array([0, 0, 1, 1])) == 0.0


def test_digits_denoiser_trains() -> None:
    from apg_guidance.digits import load_digits_pixels, train_digits_denoiser

    data = load_digits_pixels()
    assert float(data.x_train.min()) == -1.0 and float(data.x_train.max()) == 1.0
    model, report = train_digits_denoiser(data, steps=60, batch_size=64, hidden=64)
    assert np.mean(report.losses[-10:]) < np.mean(report.losses[:10])
    out = model(torch.randn(4, 64), torch.full((4,), 0.5), torch.tensor([0, 3, -1, 9]))
    assert out.shape == (4, 64) and torch.isfinite(out).all()


def test_import_is_lazy() -> None:
    code = "import sys, apg_guidance; assert 'torch' not in sys.modules; apg_guidance.apg; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cuda_graph_needs_cuda_tensors() -> None:
    guide = AdaptiveProjectedGuidance(7.5, momentum=-0.5, cuda_graph=True)
    c = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="cuda_graph=True needs both predictions on one CUDA"):
        guide(c, c * 0.5)
    with pytest.raises(TypeError, match="cuda_graph must be a bool"):
        AdaptiveProjectedGuidance(7.5, cuda_graph="yes")  # type: ignore[arg-type]

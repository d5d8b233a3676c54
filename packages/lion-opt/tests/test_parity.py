"""Parity with the official Lion update (google/automl ``lion_pytorch.py``), written out here
independently, and with the ``lion-pytorch`` package from PyPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from lion_opt import Kappa, Lion, lion_step

from papershelf.testing import assert_trajectory_close


def _problem(
    seed: int = 0,
) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], list[torch.Tensor]]]:
    """A small nonconvex loss over three tensors with gradients in closed form (float64)."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(40, 12, generator=gen, dtype=torch.float64)
    b = torch.randn(40, generator=gen, dtype=torch.float64)
    x0 = [torch.randn(s, generator=gen, dtype=torch.float64) for s in ((12,), (4, 3), (5,))]

    def grads(xs: list[torch.Tensor]) -> list[torch.Tensor]:
        r = A @ xs[0] - b
        return [A.T @ r / 40 + 0.1 * torch.cos(xs[0]), 2 * xs[1] ** 3 - xs[1], torch.sin(3 * xs[2])]

    return x0, grads


def _official(
    lr: float, betas: tuple[float, float], wd: float
) -> Callable[[int], list[torch.Tensor]]:
    """The official per-parameter update, in its own order and arithmetic (mul/add, not lerp)."""
    xs, grads = _problem()
    xs = [x.clone() for x in xs]
    ms = [torch.zeros_like(x) for x in xs]
    b1, b2 = betas

    def step(_: int) -> list[torch.Tensor]:
        for x, g, m in zip(xs, grads(xs), ms):
            x.mul_(1 - lr * wd)
            update = m * b1 + g * (1 - b1)
            x.add_(torch.sign(update), alpha=-lr)
            m.mul_(b2).add_(g, alpha=1 - b2)
        return [*xs, *ms]

    return step


def _ours(
    lr: float, betas: tuple[float, float], wd: float, **kw: Any
) -> Callable[[int], list[torch.Tensor]]:
    xs, grads = _problem()
    params = [x.clone().requires_grad_() for x in xs]
    opt = Lion(params, lr=lr, betas=betas, weight_decay=wd, **kw)

    def step(_: int) -> list[torch.Tensor]:
        for p, g in zip(params, grads([p.detach() for p in params])):
            p.grad = g
        opt.step()
        return [*(p.detach() for p in params), *(opt.state[p]["exp_avg"] for p in params)]

    return step


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    ("lr", "betas", "wd"),
    [(1e-3, (0.9, 0.99), 0.0), (3e-3, (0.95, 0.98), 2.0), (1e-2, (0.0, 0.5), 0.5)],
)
def test_matches_the_official_update_for_200_steps(
    foreach: bool, lr: float, betas: tuple[float, float], wd: float
) -> None:
    assert_trajectory_close(
        _official(lr, betas, wd), _ours(lr, betas, wd, foreach=foreach), 200, atol=1e-12
    )


def test_functional_form_matches_the_class() -> None:
    xs, grads = _problem()
    fx = [x.clone() for x in xs]
    fm = [torch.zeros_like(x) for x in xs]
    ours = _ours(3e-3, (0.9, 0.99), 1.0)

    def functional(_: int) -> list[torch.Tensor]:
        lion_step(fx, grads(fx), fm, lr=3e-3, betas=(0.9, 0.99), weight_decay=1.0)
        return [*fx, *fm]

    assert_trajectory_close(functional, ours, 100, atol=0.0)


def test_custom_kappa_object_equal_to_sign_is_lion() -> None:
    class MySign(Kappa):
        def direction(self, c: torch.Tensor) -> torch.Tensor:
            return torch.sign(c)

    assert_trajectory_close(
        _ours(3e-3, (0.9, 0.99), 1.0), _ours(3e-3, (0.9, 0.99), 1.0, kappa=MySign()), 100, atol=0.0
    )


@pytest.mark.parametrize("module", ["lion_pytorch.lion_pytorch", "lion_pytorch.foreach"])
def test_matches_lion_pytorch(module: str) -> None:
    peer = pytest.importorskip(
        module
    )  # in the test group; never skipped in `nox -s tests-lion-opt`
    xs, grads = _problem()
    params = [x.clone().requires_grad_() for x in xs]
    opt = peer.Lion(params, lr=3e-3, betas=(0.9, 0.99), weight_decay=1.0)

    def theirs(_: int) -> list[torch.Tensor]:
        for p, g in zip(params, grads([p.detach() for p in params])):
            p.grad = g
        opt.step()
        return [p.detach() for p in params]

    ours = _ours(3e-3, (0.9, 0.99), 1.0)
    assert_trajectory_close(theirs, lambda i: ours(i)[:3], 200, atol=1e-12)


def test_float32_one_step_matches_the_official_update_except_rare_sign_ties() -> None:
    """In float32, lerp and mul+add can differ by an ulp, and a sign flip at c ≈ 0 moves a
    coordinate by 2·lr. From identical states, at most 1e-4 of the coordinates may differ."""
    gen = torch.Generator().manual_seed(3)
    lr, (b1, b2), wd = 1e-3, (0.9, 0.99), 0.5
    x = torch.randn(200_000, generator=gen)
    m = torch.randn(200_000, generator=gen) * 1e-2
    g = torch.randn(200_000, generator=gen) * 1e-2
    ref_x = x * (1 - lr * wd) - lr * torch.sign(m * b1 + g * (1 - b1))
    ref_m = m * b2 + g * (1 - b2)
    ours_x, ours_m = x.clone(), m.clone()
    lion_step([ours_x], [g], [ours_m], lr=lr, betas=(b1, b2), weight_decay=wd)
    assert float(((ours_x - ref_x).abs() > 1e-6).float().mean()) <= 1e-4
    torch.testing.assert_close(ours_m, ref_m, rtol=1e-6, atol=1e-9)

"""The Lion-𝒦 members: gradients, conjugates (Fenchel–Young), foreach paths, spec round trip."""

from __future__ import annotations

import math

import pytest
import torch
from lion_opt import L2, Clip, DeadZone, Identity, Kappa, Lp, Sign, Tanh, get_kappa

MEMBERS = [Sign(), L2(), Lp(1.5), Lp(3.0), Clip(0.7), DeadZone(0.3), Tanh(2.0), Identity()]
IDS = [repr(k) for k in MEMBERS]


def _points(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # Away from every kink (0, ±δ, ±e) so autograd gradients are defined.
    out = []
    for shape in ((7,), (3, 4), (2, 3, 2)):
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        out.append(torch.where(x.abs() < 0.05, x.sign() * 0.05 + x, x))
    return out


@pytest.mark.parametrize("k", MEMBERS, ids=IDS)
def test_direction_is_the_gradient_of_value(k: Kappa) -> None:
    for c in _points():
        c = c.clone()
        if isinstance(k, (Clip, DeadZone)):  # move off the kinks at |c| = δ or e
            t = getattr(k, "delta", getattr(k, "e", 0.0))
            c = torch.where((c.abs() - t).abs() < 0.05, c * 1.2, c)
        x = c.clone().requires_grad_()
        (grad,) = torch.autograd.grad(k.value(x), [x])
        torch.testing.assert_close(k.direction(c), grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", MEMBERS, ids=IDS)
def test_fenchel_young_equality_at_the_gradient(k: Kappa) -> None:
    """𝒦(c) + 𝒦*(∇𝒦(c)) = ⟨c, ∇𝒦(c)⟩, and 𝒦(c) + 𝒦*(y) ≥ ⟨c, y⟩ for feasible y."""
    gen = torch.Generator().manual_seed(1)
    for c in _points():
        d = k.direction(c)
        lhs = float(k.value(c) + k.conjugate(d))
        assert lhs == pytest.approx(float((c * d).sum()), rel=1e-10, abs=1e-10)
        for _ in range(5):
            y = d + 0.1 * torch.randn(d.shape, generator=gen, dtype=d.dtype)
            if k.bounded:
                y = y / max(1.0, float(k.constraint(y, 1.0)) * 1.001)
            assert float(k.value(c) + k.conjugate(y)) >= float((c * y).sum()) - 1e-10


@pytest.mark.parametrize("k", MEMBERS, ids=IDS)
def test_direction_lies_in_the_constraint_set(k: Kappa) -> None:
    """∇𝒦(c) ∈ dom 𝒦*: the constraint function of the direction (λ = 1) is at most 1."""
    for c in _points():
        if k.bounded:
            assert float(k.constraint(k.direction(100 * c), 1.0)) <= 1 + 1e-12
        assert math.isfinite(float(k.conjugate(k.direction(c))))


@pytest.mark.parametrize("k", MEMBERS, ids=IDS)
def test_foreach_direction_equals_per_tensor_bitwise(k: Kappa) -> None:
    cs = _points(2)
    single = [k.direction(c) for c in cs]
    multi = k.foreach_direction_([c.clone() for c in cs])
    for a, b in zip(single, multi):
        assert torch.equal(a, b)


@pytest.mark.parametrize("k", MEMBERS, ids=IDS)
def test_direction_does_not_modify_its_input(k: Kappa) -> None:
    c = _points()[1]
    before = c.clone()
    k.direction(c)
    assert torch.equal(c, before)


@pytest.mark.parametrize("k", MEMBERS, ids=IDS)
def test_spec_round_trip(k: Kappa) -> None:
    assert k.spec is not None
    assert get_kappa(k.spec) == k
    assert get_kappa(k) is k


def test_special_values() -> None:
    c = torch.tensor([-2.0, -0.0, 0.0, 0.1, 3.0], dtype=torch.float64)
    assert Sign().direction(c).tolist() == [-1.0, 0.0, 0.0, 1.0, 1.0]
    assert DeadZone(0.5).direction(c).tolist() == [-1.0, 0.0, 0.0, 0.0, 1.0]
    assert Clip(1.0).direction(c).tolist() == [-1.0, 0.0, 0.0, 0.1, 1.0]
    assert torch.equal(L2().direction(torch.zeros(3)), torch.zeros(3))
    assert torch.equal(Lp(1.5).direction(torch.zeros(3)), torch.zeros(3))
    # Large β: tanh approaches sign; lp → l2 at p = 2.
    torch.testing.assert_close(Tanh(1e6).direction(c), Sign().direction(c))
    torch.testing.assert_close(Lp(2.0).direction(c), L2().direction(c))


def test_conjugate_is_infinite_outside_the_domain() -> None:
    y = torch.tensor([0.5, -1.5], dtype=torch.float64)
    for k in (Sign(), L2(), Clip(1.0), DeadZone(0.1), Tanh(1.0)):
        assert k.conjugate(y) == math.inf
    assert Identity().conjugate(y) == pytest.approx(0.5 * (0.25 + 2.25))
    # The solved problem's penalty: (1/λ)𝒦*(λx). Clip: (δλ/2)‖x‖²; dead zone: e‖x‖₁.
    x = torch.tensor([0.1, -0.2], dtype=torch.float64)
    assert float(Clip(0.5).penalty(x, 2.0)) == pytest.approx(0.5 * 0.5 * 2.0 * 0.05)
    assert float(DeadZone(0.3).penalty(x, 2.0)) == pytest.approx(0.3 * 0.3)
    assert float(Identity().penalty(x, 2.0)) == pytest.approx(1.0 * 0.05)


def test_custom_kappa_needs_an_override() -> None:
    class Nothing(Kappa):
        pass

    with pytest.raises(NotImplementedError, match="must override direction"):
        Nothing().direction(torch.ones(2))
    with pytest.raises(NotImplementedError, match="must override direction"):
        Nothing().direction_(torch.ones(2))

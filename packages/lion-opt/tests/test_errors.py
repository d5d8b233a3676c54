"""Every bad input raises ValueError/TypeError naming the argument and the value."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lion_opt import Lion, get_kappa, lion_step


def _p() -> torch.Tensor:
    return torch.zeros(3, requires_grad=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -1.0}, ValueError, r"lr must be a finite number >= 0, got -1\.0"),
        ({"lr": float("nan")}, ValueError, r"lr must be a finite number >= 0, got nan"),
        ({"lr": "0.1"}, TypeError, r"lr must be a real number, got '0\.1'"),
        ({"betas": (0.9,)}, TypeError, r"betas must be a pair"),
        ({"betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must be in \[0, 1\), got 1\.0"),
        ({"betas": (-0.5, 0.9)}, ValueError, r"betas\[0\] must be in \[0, 1\), got -0\.5"),
        ({"betas": (0.9, None)}, TypeError, r"betas\[1\] must be a real number, got None"),
        (
            {"weight_decay": -1e-3},
            ValueError,
            r"weight_decay must be a finite number >= 0, got -0\.001",
        ),
        (
            {"lr": 0.1, "weight_decay": 11.0},
            ValueError,
            r"lr \* weight_decay must be <= 1.*lr=0\.1, weight_decay=11\.0",
        ),
        ({"kappa": "signum"}, ValueError, r"unknown kappa 'signum' \(known: sign, l2"),
        ({"kappa": "clip(-1)"}, ValueError, r"delta must be a positive finite number, got -1\.0"),
        ({"kappa": "clip(abc)"}, ValueError, r"argument 'abc' is not a number"),
        ({"kappa": "deadzone"}, ValueError, r"'deadzone' needs an argument"),
        ({"kappa": "lp(1)"}, ValueError, r"p must be > 1 for Lp.*got 1\.0"),
        ({"kappa": "sign(2)"}, ValueError, r"'sign' takes no argument"),
        ({"kappa": "tanh(("}, ValueError, r"is not a kappa spec"),
        ({"kappa": None}, TypeError, r"kappa must be a string.*got None"),
        ({"state_dtype": torch.int32}, ValueError, r"state_dtype must be None.*got torch\.int32"),
    ],
)
def test_constructor_rejects(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Lion([_p()], **kwargs)


def test_param_group_overrides_are_validated_and_name_the_group() -> None:
    groups: list[dict[str, Any]] = [{"params": [_p()]}, {"params": [_p()], "weight_decay": -2}]
    with pytest.raises(ValueError, match=r"param group 1: .*weight_decay.*got -2"):
        Lion(groups, lr=1e-3)
    opt = Lion([_p()], lr=1e-3)
    with pytest.raises(ValueError, match=r"param group 1: unknown kappa 'box'"):
        opt.add_param_group({"params": [_p()], "kappa": "box"})
    assert len(opt.param_groups) == 1, "a rejected group must not be added"


def test_lr_times_weight_decay_is_checked_at_step_time() -> None:
    """A scheduler can raise lr after construction; the step refuses a negative decay factor."""
    p = _p()
    opt = Lion([p], lr=0.1, weight_decay=5.0)
    opt.param_groups[0]["lr"] = 0.5
    p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=r"param group 0: lr \* weight_decay must be <= 1"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(3)), "nothing may change when the step is refused"


def test_sparse_gradient_is_refused() -> None:
    p = torch.zeros(3, 2, requires_grad=True)
    opt = Lion([p], lr=1e-3)
    p.grad = torch.sparse_coo_tensor(
        torch.tensor([[0], [1]]), torch.tensor([1.0]), (3, 2), check_invariants=True
    )
    with pytest.raises(TypeError, match=r"does not support sparse gradients.*shape \(3, 2\)"):
        opt.step()


def test_functional_checks_its_lists() -> None:
    x, g, m = torch.zeros(3), torch.zeros(3), torch.zeros(3)
    with pytest.raises(ValueError, match=r"same length, got 1, 2, 1"):
        lion_step([x], [g, g], [m], lr=1e-3)
    with pytest.raises(
        ValueError, match=r"grads\[0\] and exp_avgs\[0\] must have the shape of params\[0\] \(3,\)"
    ):
        lion_step([x], [torch.zeros(4)], [m], lr=1e-3)
    with pytest.raises(ValueError, match=r"Invalid learning rate"):
        lion_step([x], [g], [m], lr=-1.0)
    with pytest.raises(TypeError, match=r"sparse gradients \(grads\[0\]"):
        lion_step([x], [torch.zeros(3).to_sparse()], [m], lr=1e-3)


def test_get_kappa_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"or a lion_opt.Kappa, got <built-in method sign"):
        get_kappa(torch.sign)  # type: ignore[arg-type]

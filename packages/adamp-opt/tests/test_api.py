# mypy: disable-error-code="no-untyped-call,index,call-overload,arg-type,misc,operator"
"""API behaviour beyond the conformance suite: decisions, per-group overrides, errors at step time."""

from __future__ import annotations

import copy
from collections import defaultdict
from pathlib import Path

import adamp_opt
import pytest
import torch
from adamp_opt import SGDP, AdamP
from torch import nn

from papershelf.testing import run_readme_blocks


def _bn_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 12, bias=False), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3)
    )


def _step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def test_decisions_by_name_and_per_group_overrides() -> None:
    model = _bn_mlp()
    opt = AdamP(
        [{"params": [model[0].weight]}, {"params": [model[3].weight], "projection": "layer"},
         {"params": [model[1].weight, model[1].bias, model[3].bias], "projection": "off"}],
        lr=1e-2,
    )  # fmt: skip
    _step(model, opt)
    assert opt.projection_decisions(model.named_parameters()) == {
        "0.weight": "channel", "1.weight": "none", "1.bias": "none", "3.weight": "layer", "3.bias": "none",
    }  # fmt: skip
    assert opt.projection_decisions()["group0.param0"] == "channel"
    assert opt.state[model[0].weight]["projection"].dtype == torch.int8


def test_state_dict_round_trip_keeps_decisions_and_new_options() -> None:
    model = _bn_mlp()
    opt = SGDP(model.parameters(), lr=0.1, momentum=0.9, projection="auto", channel_dim=0)
    _step(model, opt)
    clone = copy.deepcopy(model)
    opt2 = SGDP(clone.parameters(), lr=0.5)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.param_groups[0]["momentum"] == 0.9
    assert opt2.projection_decisions(clone.named_parameters()) == opt.projection_decisions(
        model.named_parameters()
    )
    _step(model, opt)
    _step(clone, opt2)
    for p, q in zip(model.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_state_dict_without_new_options_loads() -> None:
    """A state dict saved before maximize/foreach/projection/channel_dim existed still works."""
    model = _bn_mlp()
    opt = AdamP(model.parameters())
    sd = opt.state_dict()
    for g in sd["param_groups"]:
        for k in ("maximize", "foreach", "projection", "channel_dim"):
            g.pop(k)
    opt.__setstate__(
        {
            "state": defaultdict(dict),
            "param_groups": [dict(g, params=list(model.parameters())) for g in sd["param_groups"]],
        }
    )
    assert opt.param_groups[0]["projection"] == "auto"
    _step(model, opt)


def test_inputs_are_not_modified() -> None:
    p = torch.randn(4, 5, requires_grad=True)
    g = torch.randn(4, 5)
    p.grad = g.clone()
    for maximize in (False, True):
        AdamP([p], maximize=maximize).step()
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)


def test_decay_is_checked_again_at_step_time() -> None:
    p = torch.zeros(3, 2, requires_grad=True)
    opt = AdamP([p], lr=0.1, weight_decay=5.0)
    opt.param_groups[0]["lr"] = 1.0  # e.g. a scheduler
    p.grad = torch.ones_like(p)
    with pytest.raises(
        ValueError, match=r"decoupled decay factor 1 - 5 is negative \(lr=1.0, weight_decay=5.0\)"
    ):
        opt.step()


def test_bad_group_options_are_rejected_when_added() -> None:
    opt = AdamP([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match=r"Invalid wd_ratio: wd_ratio must be in \[0, 1\], got -1"):
        opt.add_param_group({"params": [torch.zeros(3, 3, requires_grad=True)], "wd_ratio": -1})
    with pytest.raises(
        ValueError, match=r"channel_dim: 2 is out of range for a parameter of shape \(3, 3\)"
    ):
        opt.add_param_group({"params": [torch.zeros(3, 3, requires_grad=True)], "channel_dim": 2})
    assert len(opt.param_groups) == 1


def test_complex_parameters_are_refused() -> None:
    p = torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)
    opt = SGDP([p], lr=0.1)
    p.grad = torch.ones_like(p)
    with pytest.raises(
        TypeError, match=r"SGDP does not support complex parameters \(parameter 0 of group 0"
    ):
        opt.step()


def test_sgdp_requires_lr() -> None:
    with pytest.raises(TypeError, match="lr"):
        SGDP([torch.zeros(2, requires_grad=True)])  # type: ignore[call-arg]


def test_lazy_package_exports() -> None:
    assert set(adamp_opt.__all__) <= set(dir(adamp_opt))
    assert adamp_opt.DECISION_NAMES == ("none", "channel", "layer")
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = adamp_opt.Nope


def test_readme_examples_run() -> None:
    run_readme_blocks(Path(__file__).parents[1] / "README.md")

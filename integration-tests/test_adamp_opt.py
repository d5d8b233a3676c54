"""adamp-opt downstream: AdamP on the BatchNorm'd weights, Lion on the rest, trained on digits.

A common recipe mixes optimizers: AdamP where weights are scale-invariant (it keeps their norm
from growing) and another optimizer elsewhere. Here the scale-invariant first layer uses
``adamp_opt.AdamP`` and the classifier uses ``lion_opt.Lion``; both must learn, and AdamP must keep
the first layer's norm nearly constant while plain Adam on the same layer inflates it.
"""

from __future__ import annotations

import lion_opt
import torch
from adamp_opt import AdamP
from torch import nn

from papershelf.data import load_split


def _train(first_layer_optimizer: str, steps: int = 200) -> tuple[float, float, dict[str, str]]:
    split = load_split("digits", as_torch=True)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)
    )
    invariant = [model[0].weight]
    rest = [p for n, p in model.named_parameters() if n != "0.weight"]
    if first_layer_optimizer == "AdamP":
        first: torch.optim.Optimizer = AdamP(invariant, lr=1e-2)
    else:
        first = torch.optim.Adam(invariant, lr=1e-2)
    lion = lion_opt.Lion(rest, lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-2)
    norm0 = float(model[0].weight.detach().norm())
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, split.X_train.shape[0], (64,), generator=gen)
        x = split.X_train[idx] + torch.randn(64, 64, generator=gen)
        first.zero_grad()
        lion.zero_grad()
        nn.functional.cross_entropy(model(x), split.y_train[idx]).backward()
        first.step()
        lion.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(split.X_test).argmax(1) == split.y_test).float().mean())
    decisions = (
        first.projection_decisions([("0.weight", model[0].weight)])
        if isinstance(first, AdamP)
        else {}
    )
    return acc, float(model[0].weight.detach().norm()) / norm0, decisions


def test_adamp_with_lion_learns_and_stops_norm_growth() -> None:
    acc_p, growth_p, decisions = _train("AdamP")
    acc_a, growth_a, _ = _train("Adam")
    assert acc_p > 0.8 and acc_a > 0.8, (acc_p, acc_a)  # chance is 0.1
    assert decisions == {"0.weight": "channel"}
    assert growth_p * 1.5 < growth_a, (growth_p, growth_a)

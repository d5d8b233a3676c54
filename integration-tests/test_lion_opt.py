"""Downstream use of lion-opt: train a small MLP on papershelf's digits split with Lion."""

from __future__ import annotations

import torch
from lion_opt import Lion, constraint_violation

from papershelf.data import load_split
from papershelf.devices import torch_generator


def test_lion_trains_an_mlp_on_digits() -> None:
    split = load_split("digits", as_torch=True)
    torch.manual_seed(0)  # nn.Linear's default init reads the global generator
    model = torch.nn.Sequential(
        torch.nn.Linear(split.n_features, 64), torch.nn.ReLU(), torch.nn.Linear(64, split.n_classes)
    )
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = Lion(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, weight_decay=1.0
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    gen = torch_generator(0)
    X, y = split.X_train, split.y_train
    for _ in range(20):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        acc = (model(split.X_test).argmax(1) == split.y_test).float().mean().item()
    assert acc > 0.9, f"test accuracy {acc:.3f} (chance is 0.1)"
    assert constraint_violation(opt)[0] <= 1.0 + 1e-6  # decayed weights stay in the box |w| ≤ 1/λ

"""Downstream use: train an MLP on digits with lion_opt.Lion, then run it as W8A8 / W4A8 QuantLinear.

abq_kernels.QuantLinear replaces each nn.Linear (weights packed into bit planes, activations
quantized per token, the C++ bit-plane kernel doing the integer GEMM); accuracy must stay close
to the float model.
"""

from __future__ import annotations

import abq_kernels as ak
import lion_opt
import torch
from torch import nn

from papershelf.data import load_split


def _quantized(model: nn.Sequential, w_bits: int, a_bits: int) -> nn.Sequential:
    layers = [
        ak.QuantLinear.from_linear(m, w_bits=w_bits, a_bits=a_bits)
        if isinstance(m, nn.Linear)
        else m
        for m in model
    ]
    return nn.Sequential(*layers)


def test_lion_trained_mlp_survives_quantization() -> None:
    torch.manual_seed(0)
    split = load_split("digits").to_torch()
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    opt = lion_opt.Lion(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-2)
    g = torch.Generator().manual_seed(0)
    x_train, y_train = split.X_train.float(), split.y_train.long()
    for _ in range(30):
        for idx in torch.randperm(len(x_train), generator=g).split(64):
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    x_test, y_test = split.X_test.float(), split.y_test.long()
    with torch.no_grad():
        acc_fp = float((model(x_test).argmax(1) == y_test).float().mean())
        acc = {
            (w, a): float((_quantized(model, w, a)(x_test).argmax(1) == y_test).float().mean())
            for w, a in ((8, 8), (4, 8))
        }
    assert acc_fp > 0.9
    assert acc[(8, 8)] >= acc_fp - 0.01
    assert acc[(4, 8)] >= acc_fp - 0.04

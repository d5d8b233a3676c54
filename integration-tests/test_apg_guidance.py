"""Downstream use: train the digits denoiser with Lion, then sample with APG and CFG at a high scale."""

from __future__ import annotations

import lion_opt
import torch
from apg_guidance import AdaptiveProjectedGuidance, ClassifierFreeGuidance, sample
from apg_guidance.digits import load_digits_pixels, train_digits_denoiser
from apg_guidance.metrics import knn_accuracy, out_of_range_fraction


def test_lion_trained_denoiser_apg_reduces_oversaturation() -> None:
    torch.set_num_threads(1)
    data = load_digits_pixels()
    model, report = train_digits_denoiser(
        data,
        steps=250,
        batch_size=128,
        hidden=128,
        optimizer=lambda params: lion_opt.Lion(
            params, lr=3e-4, betas=(0.9, 0.99), weight_decay=0.01
        ),
    )
    assert sum(report.losses[-25:]) < sum(report.losses[:25])
    noise = torch.randn(300, 64, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(300) % 10
    x_cfg = sample(model, noise, labels, guidance=ClassifierFreeGuidance(12.0), steps=20)
    x_apg = sample(
        model,
        noise,
        labels,
        guidance=AdaptiveProjectedGuidance(12.0, momentum=-0.5, norm_threshold=1.0),
        steps=20,
    )
    oor_cfg, oor_apg = out_of_range_fraction(x_cfg, 1.1), out_of_range_fraction(x_apg, 1.1)
    assert oor_apg < oor_cfg - 0.03, (oor_apg, oor_cfg)
    acc_cfg = knn_accuracy(x_cfg, labels, data.x_train, data.y_train)
    acc_apg = knn_accuracy(x_apg, labels, data.x_train, data.y_train)
    assert acc_apg >= acc_cfg - 0.1, (acc_apg, acc_cfg)

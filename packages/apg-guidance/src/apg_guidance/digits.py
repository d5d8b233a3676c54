"""A small class-conditional MLP denoiser for sklearn's 8x8 digits, trained on CPU in seconds.

Pixels are mapped to [-1, 1] (``v / 8 - 1``): APG projects onto the denoised prediction, which is
only meaningful for zero-centred data. The network uses EDM preconditioning (Karras et al., 2022):

.. math::

    D(x, \\sigma, y) = c_{skip} x + c_{out} F\\bigl(c_{in} x, c_{noise}, y\\bigr),\\quad
    c_{skip} = \\frac{\\sigma_d^2}{\\sigma^2 + \\sigma_d^2},\\;
    c_{out} = \\frac{\\sigma \\sigma_d}{\\sqrt{\\sigma^2 + \\sigma_d^2}},\\;
    c_{in} = \\frac{1}{\\sqrt{\\sigma^2 + \\sigma_d^2}},\\;
    c_{noise} = \\tfrac14 \\ln \\sigma,

trained with :math:`\\ln\\sigma \\sim \\mathcal N(-1.2, 1.2^2)`, loss weight
:math:`(\\sigma^2 + \\sigma_d^2) / (\\sigma\\sigma_d)^2` and label dropout (the null class makes
the unconditional model needed by guidance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from papershelf.data import load_split
from papershelf.devices import torch_generator

N_CLASSES = 10
IMAGE_SHAPE = (8, 8)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class DigitsData:
    """Digits in [-1, 1], flattened to 64 pixels, with the fixed papershelf split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_pixels(seed: int = 0) -> DigitsData:
    """``load_split("digits", standardize=False)`` mapped to [-1, 1]; train = train + val."""
    split = load_split("digits", seed=seed, standardize=False)

    def px(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a) / 8.0 - 1.0, dtype=torch.float32)

    def lab(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.int64)

    return DigitsData(
        x_train=torch.cat([px(split.X_train), px(split.X_val)]),
        y_train=torch.cat([lab(split.y_train), lab(split.y_val)]),
        x_test=px(split.X_test),
        y_test=lab(split.y_test),
    )


class DigitsDenoiser(nn.Module):
    """EDM-preconditioned MLP: ``forward(x, sigma, labels) -> x0``; label -1 is unconditional.

    Args:
        n_features: pixels per sample (64 for digits).
        n_classes: number of classes; one more embedding row is the null class.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        sigma_data: :math:`\\sigma_d`, the data's standard deviation.
    """

    def __init__(
        self,
        n_features: int = 64,
        n_classes: int = N_CLASSES,
        *,
        hidden: int = 256,
        depth: int = 3,
        sigma_data: float = 0.5,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.n_classes = n_classes
        self.sigma_data = float(sigma_data)
        self.n_freq = 16
        self.label_emb = nn.Embedding(n_classes + 1, 32)
        layers: list[nn.Module] = [nn.Linear(n_features + 2 * self.n_freq + 32, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, n_features))
        self.net = nn.Sequential(*layers)
        self.register_buffer(
            "freqs", torch.exp(torch.linspace(0.0, math.log(64.0), self.n_freq)), persistent=False
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = sigma.to(x.dtype).reshape(-1, 1)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (s * s + sd2)
        c_out = s * self.sigma_data / torch.sqrt(s * s + sd2)
        c_in = 1.0 / torch.sqrt(s * s + sd2)
        c_noise = torch.log(s) / 4.0
        freqs: torch.Tensor = self.freqs  # type: ignore[assignment]
        ang = c_noise * freqs.to(x.dtype)
        idx = torch.where(labels < 0, torch.full_like(labels, self.n_classes), labels)
        h = torch.cat(
            [c_in * x, torch.sin(ang), torch.cos(ang), self.label_emb(idx).to(x.dtype)], dim=1
        )
        out: torch.Tensor = c_skip * x + c_out * self.net(h)
        return out


@dataclass(frozen=True)
class TrainReport:
    steps: int
    final_loss: float
    losses: tuple[float, ...]


def train_digits_denoiser(
    data: DigitsData | None = None,
    *,
    steps: int = 1500,
    batch_size: int = 256,
    lr: float = 2e-3,
    label_dropout: float = 0.15,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    optimizer: OptimizerFactory | None = None,
    seed: int = 0,
    hidden: int = 256,
) -> tuple[DigitsDenoiser, TrainReport]:
    """Train :class:`DigitsDenoiser` with the EDM loss; returns the model (in eval mode) and a report.

    Args:
        data: digits from :func:`load_digits_pixels` (loaded when None).
        steps: optimiser steps (about 1500 give a usable model in ~10-20 s on one CPU thread).
        optimizer: ``factory(params) -> torch.optim.Optimizer``; default Adam(lr).
        seed: seeds the initialisation and every random draw.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not 0.0 <= label_dropout < 1.0:
        raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout!r}")
    data = load_digits_pixels() if data is None else data
    x_all, y_all = data.x_train, data.y_train
    gen = torch_generator(seed)
    sigma_data = float(x_all.std())
    with torch.random.fork_rng(devices=[]):  # seeded initialisation; the global RNG is restored
        torch.manual_seed(seed)
        model = DigitsDenoiser(x_all.shape[1], hidden=hidden, sigma_data=sigma_data)
    opt = (
        optimizer(model.parameters())
        if optimizer is not None
        else torch.optim.Adam(model.parameters(), lr=lr)
    )
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=gen)
        x0, y = x_all[idx], y_all[idx].clone()
        y[torch.rand(batch_size, generator=gen) < label_dropout] = -1
        sigma = torch.exp(p_mean + p_std * torch.randn(batch_size, generator=gen))
        noisy = x0 + sigma.reshape(-1, 1) * torch.randn(x0.shape, generator=gen)
        weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
        loss = (weight.reshape(-1, 1) * (model(noisy, sigma, y) - x0) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return model, TrainReport(steps=steps, final_loss=float(np.mean(tail)), losses=tuple(losses))


__all__ = [
    "IMAGE_SHAPE",
    "N_CLASSES",
    "DigitsData",
    "DigitsDenoiser",
    "TrainReport",
    "load_digits_pixels",
    "train_digits_denoiser",
]

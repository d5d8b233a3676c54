"""Benchmarks: the combine step (APG vs CFG) and end-to-end sampling with the digits MLP.

Ratios against CFG measured in the same run; threads pinned to 1 (printed). On a CUDA machine
the combine-step benchmarks also run on the GPU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from apg_guidance import AdaptiveProjectedGuidance, ClassifierFreeGuidance, apg, cfg, sample
from apg_guidance.digits import DigitsDenoiser

BATCHES = [2, 8]  # (B, 4, 128, 128) latents: SDXL-sized; B = 8 is a realistic batch
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _naive_listing(
    c: torch.Tensor, u: torch.Tensor, w: float, running: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    diff = c - u
    running = diff if running is None else diff + (-0.5) * running
    diff = running
    n = diff.norm(p=2, dim=[-1, -2, -3], keepdim=True)
    diff = diff * torch.minimum(torch.ones_like(diff), 15.0 / n)
    v0, v1 = diff.double(), torch.nn.functional.normalize(c.double(), dim=[-1, -2, -3])
    par = (v0 * v1).sum(dim=[-1, -2, -3], keepdim=True) * v1
    orth = v0 - par
    return c + (w - 1) * orth.to(c.dtype), running


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", ["cfg", "apg", "apg_stateful", "apg_listing_naive"])
def test_combine_step(benchmark: Any, impl: str, batch: int, device: str) -> None:
    shape = (batch, 4, 128, 128)
    g = torch.Generator().manual_seed(0)
    c = torch.randn(shape, generator=g).to(device)
    u = torch.randn(shape, generator=g).to(device)
    state: list[Any] = [None]
    guide = AdaptiveProjectedGuidance(7.5, eta=0.0, norm_threshold=15.0, momentum=-0.5)

    def step() -> torch.Tensor:
        if impl == "cfg":
            out = cfg(c, u, 7.5)
        elif impl == "apg_stateful":
            out = guide(c, u)
        elif impl == "apg":
            out, state[0] = apg(
                c, u, 7.5, eta=0.0, norm_threshold=15.0, momentum=-0.5, state=state[0]
            )
        else:
            out, state[0] = _naive_listing(c, u, 7.5, state[0])
        _sync(device)
        return out

    benchmark.extra_info.update(
        {"threads": torch.get_num_threads(), "shape": shape, "device": device}
    )
    benchmark.pedantic(step, rounds=30, iterations=3, warmup_rounds=3)


@pytest.mark.parametrize("hidden", [256, 1024])
@pytest.mark.parametrize("impl", ["cfg", "apg"])
def test_end_to_end_digits(benchmark: Any, impl: str, hidden: int) -> None:
    torch.manual_seed(0)
    model = DigitsDenoiser(hidden=hidden).eval()
    noise = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(256) % 10
    guide: Any = (
        ClassifierFreeGuidance(7.0)
        if impl == "cfg"
        else AdaptiveProjectedGuidance(7.0, norm_threshold=1.0, momentum=-0.5)
    )
    benchmark.extra_info.update({"threads": torch.get_num_threads(), "hidden": hidden})
    benchmark.pedantic(
        lambda: sample(model, noise, labels, guidance=guide, steps=16),
        rounds=8,
        iterations=1,
        warmup_rounds=1,
    )

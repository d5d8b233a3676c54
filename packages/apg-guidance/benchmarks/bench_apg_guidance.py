"""Benchmarks: the combine step (APG vs CFG) and end-to-end sampling with the digits MLP.

Ratios against CFG measured in the same run; threads pinned to 1 (printed). On a CUDA machine
both the combine step and end-to-end sampling also run on the GPU (synchronised inside each
timed call).

Allocator: at B = 8 each output is a 2 MB buffer, and with glibc's default (dynamic) thresholds
whether a freed buffer is reused or handed back to the OS (page faults on the next first touch,
often several milliseconds) depends on the heap's state, not on the method: either CFG or APG
can land on the slow side in a given run. So this module pins glibc's thresholds (mallopt: no
mmap below 32 MB, no trimming) so that both reuse their buffers and the ratio measures the
combine step. Set ``APG_BENCH_MALLOC=default`` to measure the default behaviour instead.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import pytest
import torch
from apg_guidance import AdaptiveProjectedGuidance, ClassifierFreeGuidance, apg, cfg, sample
from apg_guidance.digits import DigitsDenoiser

BATCHES = [2, 8]  # (B, 4, 128, 128) latents: SDXL-sized; B = 8 is a realistic batch
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pin_glibc_allocator() -> str:
    if os.environ.get("APG_BENCH_MALLOC", "pinned") == "default":
        return "default"
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "default (not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    ok = libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30)
    return "glibc pinned (mmap >= 32 MB, no trim)" if ok else "default (mallopt failed)"


ALLOCATOR = _pin_glibc_allocator()


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
@pytest.mark.parametrize(
    "impl", ["cfg", "apg", "apg_fused", "apg_stateful", "apg_graph", "apg_listing_naive"]
)
def test_combine_step(benchmark: Any, impl: str, batch: int, device: str) -> None:
    shape = (batch, 4, 128, 128)
    g = torch.Generator().manual_seed(0)
    c = torch.randn(shape, generator=g).to(device)
    u = torch.randn(shape, generator=g).to(device)
    if impl == "apg_graph" and device != "cuda":
        pytest.skip("CUDA graphs need a CUDA device")
    state: list[Any] = [None]
    guide = AdaptiveProjectedGuidance(
        7.5,
        eta=0.0,
        norm_threshold=15.0,
        momentum=-0.5,
        fused=impl == "apg_graph",
        cuda_graph=impl == "apg_graph",
    )

    def step() -> torch.Tensor:
        if impl == "cfg":
            out = cfg(c, u, 7.5)
        elif impl in ("apg_stateful", "apg_graph"):
            out = guide(c, u)
        elif impl in ("apg", "apg_fused"):
            out, state[0] = apg(
                c,
                u,
                7.5,
                eta=0.0,
                norm_threshold=15.0,
                momentum=-0.5,
                state=state[0],
                fused=impl == "apg_fused",
            )
        else:
            out, state[0] = _naive_listing(c, u, 7.5, state[0])
        _sync(device)
        return out

    benchmark.extra_info.update(
        {
            "threads": torch.get_num_threads(),
            "shape": shape,
            "device": device,
            "allocator": ALLOCATOR,
        }
    )
    benchmark.pedantic(step, rounds=200, iterations=5, warmup_rounds=5)  # µs each: many samples


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hidden", [256, 1024])
@pytest.mark.parametrize("impl", ["cfg", "apg"])
def test_end_to_end_digits(benchmark: Any, impl: str, hidden: int, device: str) -> None:
    torch.manual_seed(0)
    model = DigitsDenoiser(hidden=hidden).eval().to(device)
    noise = torch.randn(256, 64, generator=torch.Generator().manual_seed(1)).to(device)
    labels = (torch.arange(256) % 10).to(device)
    guide: Any = (
        ClassifierFreeGuidance(7.0)
        if impl == "cfg"
        else AdaptiveProjectedGuidance(7.0, norm_threshold=1.0, momentum=-0.5)
    )

    def run() -> torch.Tensor:
        out = sample(model, noise, labels, guidance=guide, steps=16)
        _sync(device)
        return out

    benchmark.extra_info.update(
        {"threads": torch.get_num_threads(), "hidden": hidden, "device": device}
    )
    benchmark.pedantic(run, rounds=8, iterations=1, warmup_rounds=1)


class _LatentConvDenoiser(torch.nn.Module):
    """A UNet-sized stand-in for timing only (random weights): a class-conditioned residual conv
    stack on (B, 4, 32, 32) latents, about 1.4 GFLOP per sample evaluation, so that the network,
    not the guidance, dominates a step as it does with a real latent-diffusion model."""

    def __init__(self, width: int = 96, depth: int = 8, classes: int = 11) -> None:
        super().__init__()
        self.inp = torch.nn.Conv2d(4, width, 3, padding=1)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Conv2d(width, width, 3, padding=1) for _ in range(depth)
        )
        self.emb = torch.nn.Embedding(classes, width)
        self.out = torch.nn.Conv2d(width, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, sigma: Any, labels: torch.Tensor) -> torch.Tensor:
        # NULL_LABEL (-1) uses embedding row 0
        h = self.inp(x) + self.emb(labels + 1)[:, :, None, None]
        for block in self.blocks:
            h = h + torch.nn.functional.silu(block(h))
        out: torch.Tensor = x + 0.01 * self.out(h)
        return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["cfg", "apg", "apg_graph"])
def test_end_to_end_latent_convnet(benchmark: Any, impl: str, device: str) -> None:
    """End-to-end sampling where the network dominates (the issue's "model of realistic size")."""
    if impl == "apg_graph" and device != "cuda":
        pytest.skip("CUDA graphs need a CUDA device")
    torch.manual_seed(0)
    model = _LatentConvDenoiser().eval().to(device)
    noise = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    labels = torch.tensor([3, 7]).to(device)
    guide: Any = (
        ClassifierFreeGuidance(7.5)
        if impl == "cfg"
        else AdaptiveProjectedGuidance(
            7.5,
            norm_threshold=15.0,
            momentum=-0.5,
            fused=impl == "apg_graph",
            cuda_graph=impl == "apg_graph",
        )
    )

    def run() -> torch.Tensor:
        with torch.no_grad():
            out = sample(model, noise, labels, guidance=guide, steps=8)
        _sync(device)
        return out

    benchmark.extra_info.update({"threads": torch.get_num_threads(), "device": device})
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)

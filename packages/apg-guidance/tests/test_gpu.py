"""The combine step on CUDA equals the CPU result (skipped with a reason without a CUDA device).

On CPU, small batches take the few-rows path (per-row BLAS dots, Python-float scalars); on CUDA
the batched tensor path runs, so these tests also cross-check the two paths on another device.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from apg_guidance import AdaptiveProjectedGuidance, apg

pytestmark = pytest.mark.gpu

KW: dict[str, Any] = {"eta": 0.0, "norm_threshold": 15.0, "momentum": -0.5}
# output tolerance per input dtype: both devices compute in float32 and round once at the end,
# so half outputs may differ by one unit in the last place
TOL = {torch.float32: 1e-4, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(shape, generator=g)
    return c, c + 0.5 * torch.randn(shape, generator=g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_apg_cuda_equals_cpu_over_steps(dtype: torch.dtype) -> None:
    c, u = _pair((3, 4, 32, 32))
    s_cpu: torch.Tensor | None = None
    s_gpu: torch.Tensor | None = None
    for step in range(4):
        ci, ui = (c * (1.0 + 0.1 * step)).to(dtype), (u - 0.05 * step).to(dtype)
        ref, s_cpu = apg(ci, ui, 7.5, state=s_cpu, **KW)
        out, s_gpu = apg(ci.cuda(), ui.cuda(), 7.5, state=s_gpu, **KW)
        assert out.device.type == "cuda" and out.dtype == dtype
        assert s_gpu.device.type == "cuda" and s_gpu.dtype == torch.float32  # never half
        tol = TOL[dtype]
        torch.testing.assert_close(out.cpu(), ref, rtol=tol, atol=tol)
        torch.testing.assert_close(s_gpu.cpu(), s_cpu, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_apg_cuda_float64_matches_cpu(eta: float) -> None:
    c, u = _pair((2, 3, 8, 8), seed=1)
    c, u = c.double(), u.double()
    ref, _ = apg(c, u, 6.0, eta=eta, norm_threshold=2.0)
    out, _ = apg(c.cuda(), u.cuda(), 6.0, eta=eta, norm_threshold=2.0)
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_zero_cond_in_half_precision_has_no_nan(dtype: torch.dtype) -> None:
    _, u = _pair((2, 4, 16, 16))
    c = torch.zeros_like(u)
    out, state = apg(c.to(dtype).cuda(), u.to(dtype).cuda(), 7.5, **KW)
    assert torch.isfinite(out).all() and torch.isfinite(state).all()
    ref, _ = apg(c.to(dtype), u.to(dtype), 7.5, **KW)
    torch.testing.assert_close(out.cpu(), ref, rtol=TOL[dtype], atol=TOL[dtype])


def test_stateful_momentum_on_cuda() -> None:
    c, u = _pair((2, 4, 16, 16), seed=2)
    gpu = AdaptiveProjectedGuidance(7.5, **KW)
    cpu = AdaptiveProjectedGuidance(7.5, **KW)
    firsts = []
    for _run in range(2):  # the second run checks that reset() restores the first step
        gpu.reset()
        cpu.reset()
        for step in range(3):
            ci, ui = c * (1.0 + 0.2 * step), u + 0.1 * step
            out = gpu(ci.cuda(), ui.cuda())
            torch.testing.assert_close(out.cpu(), cpu(ci, ui), rtol=1e-4, atol=1e-4)
            assert gpu.state is not None and gpu.state.device.type == "cuda"
            if step == 0:
                firsts.append(out)
        assert gpu.steps == 3
    torch.testing.assert_close(firsts[0], firsts[1], rtol=1e-6, atol=1e-6)


def test_digits_sampling_runs_on_cuda() -> None:
    """What the end-to-end benchmark does on a GPU: the sampler, the MLP and APG all on CUDA."""
    from apg_guidance import sample
    from apg_guidance.digits import DigitsDenoiser

    torch.manual_seed(0)
    model = DigitsDenoiser(hidden=64).eval().cuda()
    noise = torch.randn(16, 64, generator=torch.Generator().manual_seed(1)).cuda()
    labels = (torch.arange(16) % 10).cuda()
    guide = AdaptiveProjectedGuidance(7.0, norm_threshold=1.0, momentum=-0.5)
    out = sample(model, noise, labels, guidance=guide, steps=4)
    assert out.device.type == "cuda" and out.shape == noise.shape
    assert torch.isfinite(out).all()
    assert guide.state is not None and guide.state.device.type == "cuda"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_fused_kernel_on_cuda_equals_eager(dtype: torch.dtype) -> None:
    """``fused=True`` compiles to a Triton kernel on CUDA; same result as the eager path."""
    c, u = _pair((3, 4, 32, 32), seed=2)
    c, u = c.to(dtype).cuda(), u.to(dtype).cuda()
    s_e: torch.Tensor | None = None
    s_f: torch.Tensor | None = None
    for _ in range(3):
        ref, s_e = apg(c, u, 7.5, state=s_e, **KW)
        out, s_f = apg(c, u, 7.5, state=s_f, fused=True, **KW)
        assert out.device.type == "cuda" and out.dtype == dtype
        torch.testing.assert_close(out, ref, rtol=TOL[dtype], atol=TOL[dtype])
        torch.testing.assert_close(s_f, s_e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("momentum", [0.0, -0.5])
def test_cuda_graph_replay_equals_eager_over_runs(fused: bool, momentum: float) -> None:
    """``cuda_graph=True``: same outputs and state as the eager class, across a reset and a
    new run, with fresh (non-aliased) outputs."""
    kw: dict[str, Any] = {"eta": 0.0, "norm_threshold": 15.0, "momentum": momentum}
    eager = AdaptiveProjectedGuidance(7.5, **kw)
    graphed = AdaptiveProjectedGuidance(7.5, cuda_graph=True, fused=fused, **kw)
    c, u = _pair((2, 4, 32, 32), seed=5)
    c, u = c.cuda(), u.cuda()
    outs = []
    for run in range(2):
        eager.reset()
        graphed.reset()
        for step in range(4):
            ci, ui = c * (1.0 + 0.1 * step + run), u - 0.05 * step
            ref = eager(ci, ui)
            out = graphed(ci, ui)
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
            assert eager.state is not None and graphed.state is not None
            torch.testing.assert_close(graphed.state, eager.state, rtol=1e-5, atol=1e-5)
            outs.append(out)
    assert outs[0].data_ptr() != outs[1].data_ptr()  # outputs are fresh tensors
    # a new shape recaptures
    c2, u2 = _pair((3, 4, 16, 16), seed=6)
    eager.reset()
    graphed.reset()
    torch.testing.assert_close(graphed(c2.cuda(), u2.cuda()), eager(c2.cuda(), u2.cuda()))

"""CUDA kernel exactness against the CPU kernel (needs an sm_80+ GPU; skipped without one)."""

from __future__ import annotations

import abq_kernels as ak
import pytest
import torch


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("m", "n", "k"), [(1, 64, 4096), (3, 33, 200), (16, 256, 1024), (129, 17, 129)]
)
@pytest.mark.parametrize(("x_bits", "w_bits"), [(8, 2), (8, 4), (4, 4), (8, 8), (3, 5), (1, 1)])
@pytest.mark.parametrize("signed", [True, False])
def test_cuda_equals_cpu(m: int, n: int, k: int, x_bits: int, w_bits: int, signed: bool) -> None:
    if not ak.available_backends()["cuda"].available:
        pytest.fail(
            f"CUDA device present but backend unavailable: {ak.available_backends()['cuda'].reason}"
        )
    g = torch.Generator().manual_seed(m * n + k)
    lo_x, hi_x = (-(1 << (x_bits - 1)), 1 << (x_bits - 1)) if signed else (0, 1 << x_bits)
    lo_w, hi_w = (-(1 << (w_bits - 1)), 1 << (w_bits - 1)) if signed else (0, 1 << w_bits)
    x = torch.randint(lo_x, hi_x, (m, k), generator=g)
    w = torch.randint(lo_w, hi_w, (n, k), generator=g)
    cpu = ak.gemm(x, w, x_bits=x_bits, w_bits=w_bits, signed=signed, backend="cpu")
    assert torch.equal(ak.pack(x.cuda().int(), x_bits).cpu(), ak.pack(x.int(), x_bits))
    gpu = ak.gemm(x.cuda(), w.cuda(), x_bits=x_bits, w_bits=w_bits, signed=signed)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)


@pytest.mark.gpu
def test_quantlinear_on_cuda_matches_cpu() -> None:
    lin = torch.nn.Linear(256, 64)
    q = ak.QuantLinear.from_linear(lin, w_bits=2, a_bits=8, bit_balance=True)
    x = torch.randn(5, 256)
    torch.testing.assert_close(q.cuda()(x.cuda()).cpu(), q.cpu()(x), rtol=1e-5, atol=1e-5)

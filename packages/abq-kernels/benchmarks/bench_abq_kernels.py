"""CPU bit-plane kernel vs torch float32 and int8 matmul at LLM-like shapes (ratios, one run).

Run: ``nox -s bench-abq-kernels``. Threads: whatever torch/OpenMP use (1 under the papershelf
plugin); the thread count is printed with every result.
"""

from __future__ import annotations

from typing import Any

import abq_kernels as ak
import pytest
import torch

K, N = 2048, 2048  # a scaled-down LLaMA projection
SHAPES = [1, 16, 128]  # decode (M = 1..16) and prefill
BITS = [(8, 8), (8, 4), (8, 3), (8, 2)]  # (a_bits, w_bits); W2* runs as w_bits = 3


def _codes(m: int, k: int, bits: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(m)
    return torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (m, k), generator=g).to(torch.int32)


@pytest.mark.parametrize("m", SHAPES)
@pytest.mark.parametrize(("a_bits", "w_bits"), BITS)
def test_bitplane_cpu(benchmark: Any, m: int, a_bits: int, w_bits: int) -> None:
    x, w = _codes(m, K, a_bits), _codes(N, K, w_bits)
    wp = ak.pack(w, w_bits)

    def run() -> torch.Tensor:  # activations are packed per call, weights once (as QuantLinear)
        return ak.gemm_packed(ak.pack(x, a_bits), wp, x_bits=a_bits, w_bits=w_bits)

    out = benchmark(run)
    assert torch.equal(out.long(), x.long() @ w.long().T)
    benchmark.extra_info.update(
        threads=torch.get_num_threads(), kind=f"bitplane W{w_bits}A{a_bits}"
    )


@pytest.mark.parametrize("m", SHAPES)
def test_torch_float32(benchmark: Any, m: int) -> None:
    x, w = torch.randn(m, K), torch.randn(N, K)
    benchmark(lambda: x @ w.T)
    benchmark.extra_info.update(threads=torch.get_num_threads(), kind="torch fp32")


@pytest.mark.parametrize("m", SHAPES)
def test_torch_int8(benchmark: Any, m: int) -> None:
    x, w = _codes(m, K, 8).to(torch.int8), _codes(N, K, 8).to(torch.int8)
    mm = getattr(torch, "_int_mm", None)
    if mm is None or m <= 16:
        # torch._int_mm on CPU needs M > 16 on some builds; int32 matmul is the fallback baseline
        xi, wi = x.int(), w.int().T.contiguous()
        benchmark(lambda: xi @ wi)
        kind = "torch int32 matmul"
    else:
        wt = w.T.contiguous()
        benchmark(lambda: mm(x, wt))
        kind = "torch._int_mm int8"
    benchmark.extra_info.update(threads=torch.get_num_threads(), kind=kind)

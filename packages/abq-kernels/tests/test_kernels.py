"""Exactness: every backend equals integer matrix multiplication of the same codes."""

from __future__ import annotations

import abq_kernels as ak
import numpy as np
import pytest
import torch
from abq_kernels import reference
from abq_kernels.kernels import code_range
from hypothesis import given, settings
from hypothesis import strategies as st

CPU_BACKENDS = ("cpu", "torch", "numpy")


def _codes(g: torch.Generator, rows: int, k: int, bits: int, signed: bool) -> torch.Tensor:
    lo, hi = code_range(bits, signed)
    return torch.randint(lo, hi + 1, (rows, k), generator=g, dtype=torch.int64)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 9),
    n=st.integers(1, 9),
    k=st.integers(1, 300),
    x_bits=st.integers(1, 8),
    w_bits=st.integers(1, 8),
    signed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gemm_exact_all_backends(
    m: int, n: int, k: int, x_bits: int, w_bits: int, signed: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x, w = _codes(g, m, k, x_bits, signed), _codes(g, n, k, w_bits, signed)
    expected = x @ w.T
    for backend in CPU_BACKENDS:
        out = ak.gemm(x, w, x_bits=x_bits, w_bits=w_bits, signed=signed, backend=backend)
        assert out.dtype == torch.int32
        assert torch.equal(out.long(), expected), backend


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 7),
    n=st.integers(1, 7),
    k=st.integers(1, 200),
    x_bits=st.integers(1, 8),
    w_bits=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_gemm_zero_points_exact(
    m: int, n: int, k: int, x_bits: int, w_bits: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x, w = _codes(g, m, k, x_bits, False), _codes(g, n, k, w_bits, False)
    zx, zw = _codes(g, 1, m, x_bits, False)[0], _codes(g, 1, n, w_bits, False)[0]
    expected = (x - zx[:, None]) @ (w - zw[:, None]).T
    for backend in ("cpu", "numpy"):
        out = ak.gemm(
            x, w, x_bits=x_bits, w_bits=w_bits, signed=False, x_zero=zx, w_zero=zw, backend=backend
        )
        assert torch.equal(out.long(), expected)


@pytest.mark.parametrize("k", [1, 63, 64, 65, 127, 128, 129, 256, 1000])
def test_padding_of_k(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    x, w = _codes(g, 3, k, 8, True), _codes(g, 5, k, 3, True)
    assert reference.packed_words(k) % 2 == 0 and reference.packed_words(k) * 64 >= k
    assert torch.equal(ak.gemm(x, w, x_bits=8, w_bits=3).long(), x @ w.T)


def test_pack_layout_identical_across_backends() -> None:
    g = torch.Generator().manual_seed(0)
    c = _codes(g, 7, 200, 5, True)
    planes = [ak.pack(c, 5, backend=b) for b in CPU_BACKENDS]
    for p in planes[1:]:
        assert torch.equal(p, planes[0])
    # bit k of word w of plane b is bit b of code[:, 64 w + k] (LSB first)
    u = planes[0].numpy().view(np.uint64)
    assert int((u[2, 4, 1] >> np.uint64(3)) & np.uint64(1)) == (int(c[4, 67]) >> 2) & 1


def test_extreme_codes_and_max_k_w8a8() -> None:
    k = ak.max_k(8, 8)
    assert k == (2**31 - 1) // (255 * 255)
    x = torch.full((1, k), -128, dtype=torch.int8)
    w = torch.full((2, k), -128, dtype=torch.int8)
    out = ak.gemm(x, w, x_bits=8, w_bits=8)
    assert int(out[0, 0]) == 128 * 128 * k
    xu = torch.full((1, k), 255, dtype=torch.uint8)
    assert int(ak.gemm(xu, xu, x_bits=8, w_bits=8, signed=False)[0, 0]) == 255 * 255 * k


def test_non_contiguous_and_inputs_untouched() -> None:
    g = torch.Generator().manual_seed(1)
    x = _codes(g, 20, 6, 4, True).T  # (6, 20) non-contiguous
    w = _codes(g, 9, 40, 4, True)[:, ::2]  # (9, 20) strided
    x0, w0 = x.clone(), w.clone()
    assert not x.is_contiguous() and not w.is_contiguous()
    out = ak.gemm(x, w, x_bits=4, w_bits=4)
    assert torch.equal(out.long(), x @ w.T)
    assert torch.equal(x, x0) and torch.equal(w, w0)


def test_numpy_in_numpy_out_and_empty() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (3, 50))
    w = rng.integers(0, 4, (4, 50))
    out = ak.gemm(x, w, x_bits=2, w_bits=2, signed=False)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, x @ w.T)
    empty = ak.gemm(
        torch.zeros(0, 10, dtype=torch.int8),
        torch.zeros(3, 10, dtype=torch.int8),
        x_bits=2,
        w_bits=2,
    )
    assert empty.shape == (0, 3)


def test_linear_in_bits_cost_model() -> None:
    # each operand plane pair is one binary GEMM: W1A1 of +-1-free unsigned codes is plain popcount
    x = torch.tensor([[1, 0, 1, 1]])
    w = torch.tensor([[1, 1, 1, 0]])
    assert int(ak.gemm(x, w, x_bits=1, w_bits=1, signed=False)[0, 0]) == 2
    # signed 1-bit codes are {-1, 0}
    assert int(ak.gemm(-x, -w, x_bits=1, w_bits=1, signed=True)[0, 0]) == 2

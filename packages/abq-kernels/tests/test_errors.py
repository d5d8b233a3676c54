"""Every bad input raises a clear error naming the argument and the value."""

from __future__ import annotations

import abq_kernels as ak
import pytest
import torch
from torch import nn

X = torch.zeros(2, 8, dtype=torch.int8)
W = torch.zeros(3, 8, dtype=torch.int8)


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bits_out_of_range(bits: int) -> None:
    with pytest.raises(ValueError, match=rf"x_bits must be in 1\.\.8, got {bits}"):
        ak.gemm(X, W, x_bits=bits, w_bits=4)
    with pytest.raises(ValueError, match=rf"w_bits must be in 1\.\.8, got {bits}"):
        ak.gemm(X, W, x_bits=4, w_bits=bits)


def test_bits_wrong_type() -> None:
    with pytest.raises(TypeError, match="x_bits must be an int"):
        ak.gemm(X, W, x_bits=4.0, w_bits=4)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="w_bits must be an int"):
        ak.gemm(X, W, x_bits=4, w_bits=True)


def test_float_codes_rejected() -> None:
    with pytest.raises(TypeError, match=r"x_q must hold integer codes.*torch\.float32"):
        ak.gemm(X.float(), W, x_bits=4, w_bits=4)
    with pytest.raises(TypeError, match=r"w_q must be a torch.Tensor or numpy array, got list"):
        ak.gemm(X, [[1]], x_bits=4, w_bits=4)  # type: ignore[call-overload]


def test_shape_mismatch() -> None:
    with pytest.raises(
        ValueError, match=r"share K: x_q has shape \(2, 8\), w_q has shape \(3, 7\)"
    ):
        ak.gemm(X, torch.zeros(3, 7, dtype=torch.int8), x_bits=4, w_bits=4)
    with pytest.raises(ValueError, match=r"x_q must be 2-D.*\(8,\)"):
        ak.gemm(X[0], W, x_bits=4, w_bits=4)


def test_codes_out_of_range() -> None:
    with pytest.raises(
        ValueError, match=r"x_q has codes in \[0, 8\], outside the signed 4-bit range \[-8, 7\]"
    ):
        ak.gemm(torch.tensor([[8, 0]]), torch.zeros(1, 2, dtype=torch.int8), x_bits=4, w_bits=4)
    with pytest.raises(
        ValueError, match=r"w_q has codes in \[-1, 0\], outside the unsigned 2-bit range \[0, 3\]"
    ):
        ak.gemm(
            torch.zeros(1, 2, dtype=torch.int8),
            torch.tensor([[-1, 0]]),
            x_bits=2,
            w_bits=2,
            signed=False,
        )


def test_overflow_refused() -> None:
    k = ak.max_k(8, 8) + 1
    with pytest.raises(ValueError, match=rf"K={k} can overflow int32 accumulation at W8A8"):
        ak.gemm(
            torch.zeros(1, k, dtype=torch.int8),
            torch.zeros(1, k, dtype=torch.int8),
            x_bits=8,
            w_bits=8,
        )


def test_device_mismatch() -> None:
    with pytest.raises(ValueError, match="x_q is on cpu but w_q is on meta"):
        ak.gemm(X, torch.zeros(3, 8, dtype=torch.int8, device="meta"), x_bits=4, w_bits=4)


def test_backend_errors() -> None:
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'gpu'"):
        ak.gemm(X, W, x_bits=4, w_bits=4, backend="gpu")
    with pytest.raises(ValueError, match="backend 'cuda' needs CUDA tensors, got tensors on cpu"):
        ak.gemm(X, W, x_bits=4, w_bits=4, backend="cuda")


def test_unavailable_cuda_never_substituted() -> None:
    status = ak.available_backends()["cuda"]
    if status.available:
        pytest.skip("a usable CUDA device is present")
    assert status.reason
    from abq_kernels._backend import require_backend

    with pytest.raises(RuntimeError, match="backend 'cuda' is unavailable: "):
        require_backend("cuda")


def test_zero_point_errors() -> None:
    with pytest.raises(ValueError, match=r"x_zero must have shape \(2,\), got \(3,\)"):
        ak.gemm(X, W, x_bits=4, w_bits=4, signed=False, x_zero=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(
        ValueError, match=r"w_zero must lie in the code range \[0, 15\], got \[16, 16\]"
    ):
        ak.gemm(X, W, x_bits=4, w_bits=4, signed=False, w_zero=16)


def test_gemm_packed_errors() -> None:
    xp = ak.pack(X.int(), 4)
    wp = ak.pack(W.int(), 3)
    with pytest.raises(ValueError, match="wp has 3 planes but its bits argument is 4"):
        ak.gemm_packed(xp, wp, x_bits=4, w_bits=4)
    wp2 = ak.pack(torch.zeros(3, 200, dtype=torch.int32), 3)
    with pytest.raises(ValueError, match="xp and wp pack different K: 2 vs 4 words"):
        ak.gemm_packed(xp, wp2, x_bits=4, w_bits=3)
    with pytest.raises(TypeError, match="xp must be a 3-D int64 tensor"):
        ak.gemm_packed(xp.int(), wp, x_bits=4, w_bits=3)


def test_quantize_errors() -> None:
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"bits must be in 1..8, got 0"):
        ak.quantize(x, 0)
    with pytest.raises(TypeError, match=r"x must be a floating-point torch.Tensor"):
        ak.quantize(x.long(), 4)
    with pytest.raises(ValueError, match="group_size=3 must divide the 8 columns"):
        ak.quantize(x, 4, granularity="group", group_size=3)
    with pytest.raises(ValueError, match="granularity must be one of"):
        ak.quantize(x, 4, granularity="row")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bit_balance applies to asymmetric quantization"):
        ak.quantize(x, 2, symmetric=True, bit_balance=True)
    with pytest.raises(ValueError, match="bits must be <= 7, got 8"):
        ak.quantize(x, 8, bit_balance=True)
    with pytest.raises(ValueError, match="symmetric quantization needs bits >= 2, got 1"):
        ak.quantize(x, 1, symmetric=True)


def test_quantlinear_errors() -> None:
    lin = nn.Linear(16, 4)
    with pytest.raises(TypeError, match=r"linear must be a torch.nn.Linear, got Conv1d"):
        ak.QuantLinear.from_linear(nn.Conv1d(1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a_bits must be in 1..8, got 9"):
        ak.QuantLinear.from_linear(lin, a_bits=9)
    q = ak.QuantLinear.from_linear(lin)
    with pytest.raises(ValueError, match=r"x must end in in_features=16, got shape \(2, 15\)"):
        q(torch.randn(2, 15))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        q(torch.ones(2, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="overflows int32 accumulation"):
        ak.QuantLinear(40000, 2, w_bits=8, a_bits=8)


def test_calibration_config_errors() -> None:
    with pytest.raises(ValueError, match="loss must be 'dc' or 'mse', got 'kl'"):
        ak.CalibrationConfig(loss="kl")
    with pytest.raises(ValueError, match="epochs must be a non-negative int, got -1"):
        ak.CalibrationConfig(epochs=-1)

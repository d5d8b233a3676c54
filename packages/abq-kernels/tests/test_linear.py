"""QuantLinear: kernel path equals the fake-quantization simulation; state survives saving."""

from __future__ import annotations

import io

import abq_kernels as ak
import pytest
import torch
from torch import nn

from papershelf.testing import ModuleSuite


def _linear(i: int = 96, o: int = 40, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(i, o)


@pytest.mark.parametrize(
    ("w_bits", "a_bits", "group_size", "bal"),
    [
        (8, 8, None, False),
        (4, 8, None, False),
        (4, 4, 32, False),
        (2, 8, None, True),
        (3, 6, 48, False),
        (1, 8, None, False),
    ],
)
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_matches_fake_quant_reference(
    w_bits: int, a_bits: int, group_size: int | None, bal: bool, backend: str
) -> None:
    lin = _linear()
    q = ak.QuantLinear.from_linear(
        lin, w_bits=w_bits, a_bits=a_bits, group_size=group_size, bit_balance=bal, backend=backend
    )
    x = torch.randn(2, 5, 96, generator=torch.Generator().manual_seed(1))
    wq = ak.fake_quantize(
        lin.weight.detach(),
        w_bits,
        granularity="group" if group_size else "channel",
        group_size=group_size,
        bit_balance=bal,
    )
    torch.testing.assert_close(q.dequantized_weight(), wq, rtol=0, atol=1e-6)
    xq = ak.fake_quantize(x.reshape(-1, 96), a_bits, granularity="token").reshape(x.shape)
    ref = xq @ wq.T + lin.bias.detach()
    out = q(x)
    assert out.shape == (2, 5, 40)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-4)


def test_w8a8_close_to_float_and_bits_order() -> None:
    lin = _linear(128, 64)
    x = torch.randn(16, 128, generator=torch.Generator().manual_seed(2))
    y = lin(x).detach()
    errs = {
        wb: float((ak.QuantLinear.from_linear(lin, w_bits=wb, a_bits=8)(x) - y).pow(2).mean())
        for wb in (8, 4, 2)
    }
    assert errs[8] < errs[4] < errs[2]
    assert errs[8] < 1e-4 * float(y.pow(2).mean()) * 100


def test_state_dict_round_trip_and_input_untouched() -> None:
    lin = _linear()
    w0 = lin.weight.detach().clone()
    q = ak.QuantLinear.from_linear(lin, w_bits=2, a_bits=8, bit_balance=True)
    assert torch.equal(lin.weight, w0)
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    q2 = ak.QuantLinear(96, 40, w_bits=2, a_bits=8, bit_balance=True)
    q2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(3, 96)
    torch.testing.assert_close(q2(x), q(x), rtol=0, atol=0)
    assert q.memory_bits_per_weight() == pytest.approx(3 + 24 / 96)
    assert "W2*A8 (stored 3 bits)" in repr(q)


class TestQuantLinearModule(ModuleSuite):
    expected_shape = (4, 7, 24)
    check_gradients = False  # inference-only integer kernel

    def make_module(self) -> ak.QuantLinear:
        return ak.QuantLinear.from_linear(_linear(32, 24), w_bits=4, a_bits=8)

    def make_inputs(
        self, dtype: torch.dtype, generator: torch.Generator
    ) -> tuple[torch.Tensor, ...]:
        return (torch.randn(4, 7, 32, dtype=dtype, generator=generator),)

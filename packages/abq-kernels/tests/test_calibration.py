"""Distribution-correction loss against its formula; block calibration lowers it."""

from __future__ import annotations

import abq_kernels as ak
import torch
from abq_kernels.calibration import quantize_model
from abq_kernels.model import TinyLM, evaluate, markov_sequences
from torch.nn import functional as F


def _official_loss(
    y_q: torch.Tensor,
    y_fp: torch.Tensor,
    y_fp2: torch.Tensor,
    a_q: torch.Tensor,
    a_fp: torch.Tensor,
) -> torch.Tensor:
    kl = torch.nn.KLDivLoss(reduction="sum")  # "mean" = sum / numel; avoids the deprecation warning
    n = a_q.numel()
    loss = (kl(F.log_softmax(a_fp, -1), F.softmax(a_q, -1)) / n).abs()
    loss += (kl(F.log_softmax(a_q, -1), F.softmax(a_fp, -1)) / n).abs()
    loss += F.mse_loss(y_fp, y_q) + F.mse_loss(y_fp2, y_q)
    cos = torch.nn.CosineSimilarity(dim=2)
    loss -= torch.log(cos(y_q, y_fp).mean().abs())
    loss -= torch.log(cos(y_q, y_fp2).mean().abs())
    return loss  # type: ignore[no-any-return]


def test_loss_matches_official_expression() -> None:
    g = torch.Generator().manual_seed(0)
    y_q, y_fp, y_fp2 = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    a_q, a_fp = (torch.rand(2, 5, 5, generator=g).softmax(-1) for _ in range(2))
    ours = ak.distribution_correction_loss(y_q, y_fp, y_fp2, a_q, a_fp)
    torch.testing.assert_close(
        ours, _official_loss(y_q, y_fp, y_fp2, a_q, a_fp), rtol=1e-6, atol=1e-6
    )
    # identical inputs: KL = 0, MSE = 0, cos = 1 -> loss 0; without the double softmax too
    z = ak.distribution_correction_loss(y_q, y_q, y_q, a_q, a_q, double_softmax=False)
    assert abs(float(z)) < 1e-6


def test_calibration_reduces_loss_and_keeps_compensation() -> None:
    torch.manual_seed(0)
    model = TinyLM(d_model=32, n_layers=1).eval()
    ids = markov_sequences(16, 9, seed=0)
    cfg = ak.CalibrationConfig(w_bits=2, a_bits=8, epochs=8, batch_size=8)
    qm = quantize_model(model, ids, cfg)
    assert cfg.history[-1] < cfg.history[0]
    sd = qm.state_dict()
    assert any(k.endswith("fc2.w_planes") for k in sd)
    ppl, acc = evaluate(qm, ids)
    assert ppl > 0 and 0 <= acc <= 1
    # the float model is untouched and still trainable
    assert all(p.requires_grad is False for p in model.blocks[0].parameters())

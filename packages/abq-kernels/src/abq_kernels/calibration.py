r"""Block-wise calibration with ABQ-LLM's distribution-correction loss.

Per transformer block, with :math:`y_{fp}` the float block on the float-chain input,
:math:`y_{fp2}` the float block on the *quantized-chain* input, :math:`y_q` the quantized block on
the quantized-chain input and :math:`A` head-averaged attention maps:

.. math::

    \mathcal L = |\mathrm{KL}(A_q \| A_{fp})| + |\mathrm{KL}(A_{fp} \| A_q)|
        + \mathrm{MSE}(y_{fp}, y_q) + \mathrm{MSE}(y_{fp2}, y_q)
        - \log|\overline{\cos}(y_q, y_{fp})| - \log|\overline{\cos}(y_q, y_{fp2})|

(attention KL "AKL" plus the double log-cosine "DLC"; :math:`\overline{\cos}` is the cosine over
features averaged over tokens; KL terms are ``KLDivLoss(reduction="mean")``). The official code
applies ``softmax``/``log_softmax`` to the attention *probabilities* (a double softmax);
``double_softmax=True`` (default) reproduces that, ``False`` uses the maps as distributions.

Learnable: LWC factors :math:`\gamma = \sigma(u), \beta = \sigma(l)` per weight row (init 4.0,
lr 1e-2) and the rank-1 compensation :math:`W' = W + a b^\top` (a = 0, b = 1, lr 1e-2) on ``fc2``
of the first 3 and last 4 blocks, trained with AdamW (weight decay 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from abq_kernels.linear import QuantLinear
from abq_kernels.model import LINEARS, Block, TinyLM
from abq_kernels.quantizer import fake_quantize


@dataclass
class CalibrationConfig:
    """Quantization and calibration settings (defaults from the official code where it has them).

    Attributes:
        w_bits, a_bits: weight / activation bits.
        bit_balance: W2*-style ``2**w_bits + 1`` levels (stored in ``w_bits + 1`` bits).
        epochs: passes over the calibration set (official: 10; 20 for W4A4, 40 for W2).
        batch_size: sequences per step (official: 1).
        lwc_lr, comp_lr: learning rates of the clipping factors and compensation vector (1e-2).
        loss: ``"dc"`` (distribution correction, the paper) or ``"mse"`` (OmniQuant's block MSE).
        double_softmax: reproduce the official KL-of-softmax-of-probabilities quirk.
        compensation: add the rank-1 compensation vector to fc2 of eligible blocks.
    """

    w_bits: int = 4
    a_bits: int = 8
    bit_balance: bool = False
    epochs: int = 10
    batch_size: int = 1
    lwc_lr: float = 1e-2
    comp_lr: float = 1e-2
    loss: str = "dc"
    double_softmax: bool = True
    compensation: bool = True
    seed: int = 0
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.loss not in ("dc", "mse"):
            raise ValueError(f"loss must be 'dc' or 'mse', got {self.loss!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "epochs" else 1):
                raise ValueError(
                    f"{name} must be a {'non-negative' if name == 'epochs' else 'positive'} int, got {v!r}"
                )


def distribution_correction_loss(
    y_q: torch.Tensor,
    y_fp: torch.Tensor,
    y_fp2: torch.Tensor,
    attn_q: torch.Tensor,
    attn_fp: torch.Tensor,
    *,
    double_softmax: bool = True,
) -> torch.Tensor:
    """AKL + 2 x MSE + DLC (see the module docstring); outputs (B, T, D), maps (B, T, T)."""
    if double_softmax:
        log_fp, p_fp = F.log_softmax(attn_fp, -1), F.softmax(attn_fp, -1)
        log_q, p_q = F.log_softmax(attn_q, -1), F.softmax(attn_q, -1)
    else:
        eps = 1e-12
        log_fp, p_fp = attn_fp.clamp_min(eps).log(), attn_fp
        log_q, p_q = attn_q.clamp_min(eps).log(), attn_q
    # KLDivLoss(reduction="mean")(input, target) = mean(target * (log target - input))
    kl_q_fp = torch.xlogy(p_q, p_q).sub(p_q * log_fp).mean()
    kl_fp_q = torch.xlogy(p_fp, p_fp).sub(p_fp * log_q).mean()
    loss = kl_q_fp.abs() + kl_fp_q.abs()
    loss = loss + F.mse_loss(y_q, y_fp) + F.mse_loss(y_q, y_fp2)
    loss = loss - F.cosine_similarity(y_q, y_fp, dim=2).mean().abs().log()
    loss = loss - F.cosine_similarity(y_q, y_fp2, dim=2).mean().abs().log()
    return loss


class _BlockQuantParams(nn.Module):
    """LWC factors per linear and the optional compensation vector of fc2."""

    def __init__(self, block: Block, compensation: bool) -> None:
        super().__init__()
        self.up = nn.ParameterDict()
        self.low = nn.ParameterDict()
        for name in LINEARS:
            out = getattr(block, name).out_features
            self.up[name] = nn.Parameter(torch.full((out, 1), 4.0))
            self.low[name] = nn.Parameter(torch.full((out, 1), 4.0))
        self.comp_left: nn.Parameter | None = None
        self.comp_right: nn.Parameter | None = None
        if compensation:
            self.comp_left = nn.Parameter(torch.zeros(block.fc2.out_features, 1))
            self.comp_right = nn.Parameter(torch.ones(1, block.fc2.in_features))

    def weight(self, block: Block, name: str) -> torch.Tensor:
        w: torch.Tensor = getattr(block, name).weight
        if name == "fc2" and self.comp_left is not None and self.comp_right is not None:
            w = w + self.comp_left @ self.comp_right
        return w


def _fake_linear(block: Block, params: _BlockQuantParams, cfg: CalibrationConfig):  # type: ignore[no-untyped-def]
    def lin(name: str, h: torch.Tensor) -> torch.Tensor:
        mod = getattr(block, name)
        wq = fake_quantize(
            params.weight(block, name),
            cfg.w_bits,
            bit_balance=cfg.bit_balance,
            upper=torch.sigmoid(params.up[name]),
            lower=torch.sigmoid(params.low[name]),
        )
        shape = h.shape
        hq = fake_quantize(h.reshape(-1, shape[-1]), cfg.a_bits, granularity="token").reshape(shape)
        return F.linear(hq, wq, mod.bias)

    return lin


def calibrate_block(
    block: Block,
    fp_inputs: torch.Tensor,
    q_inputs: torch.Tensor,
    cfg: CalibrationConfig,
    *,
    index: int = 0,
    n_blocks: int = 1,
) -> dict[str, QuantLinear]:
    """Calibrate one block and return its QuantLinear layers (the float block is not modified).

    ``fp_inputs``/``q_inputs``: the block's inputs along the float and the quantized chain (B, T, D).
    The compensation vector is folded into fc2's weight before packing, so it is saved with the
    QuantLinear buffers.
    """
    comp = cfg.compensation and (index <= 2 or index >= n_blocks - 4)
    params = _BlockQuantParams(block, comp)
    for p in block.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        y_fp, attn_fp = block(fp_inputs)
        y_fp2, _ = block(q_inputs)
    if cfg.epochs > 0:
        groups = [{"params": [*params.up.values(), *params.low.values()], "lr": cfg.lwc_lr}]
        if comp:
            groups.append({"params": [params.comp_left, params.comp_right], "lr": cfg.comp_lr})
        opt = torch.optim.AdamW(groups, weight_decay=0.0)
        lin = _fake_linear(block, params, cfg)
        g = torch.Generator().manual_seed(cfg.seed + index)
        n = q_inputs.shape[0]
        for _ in range(cfg.epochs):
            total = 0.0
            for idx in torch.randperm(n, generator=g).split(cfg.batch_size):  # type: ignore[no-untyped-call]
                y_q, attn_q = block(q_inputs[idx], lin)
                if cfg.loss == "dc":
                    loss = distribution_correction_loss(
                        y_q,
                        y_fp[idx],
                        y_fp2[idx],
                        attn_q,
                        attn_fp[idx],
                        double_softmax=cfg.double_softmax,
                    )
                else:
                    loss = F.mse_loss(y_q, y_fp[idx])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                total += float(loss.detach())
            cfg.history.append(total)
    with torch.no_grad():
        return {
            name: QuantLinear.from_linear(
                _with_weight(getattr(block, name), params.weight(block, name).detach()),
                w_bits=cfg.w_bits,
                a_bits=cfg.a_bits,
                bit_balance=cfg.bit_balance,
                upper=torch.sigmoid(params.up[name]).detach(),
                lower=torch.sigmoid(params.low[name]).detach(),
            )
            for name in LINEARS
        }


def _with_weight(mod: nn.Linear, weight: torch.Tensor) -> nn.Linear:
    new = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if mod.bias is not None:
            new.bias.copy_(mod.bias)
    return new


class QuantizedLM(nn.Module):
    """A :class:`~abq_kernels.model.TinyLM` whose block linears run as QuantLinear kernels."""

    def __init__(self, model: TinyLM, layers: list[dict[str, QuantLinear]]) -> None:
        super().__init__()
        self.model = model
        self.qlayers = nn.ModuleList(nn.ModuleDict(d) for d in layers)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        m = self.model
        h = m.embed(ids)
        for blk, ql in zip(m.blocks, self.qlayers):
            h = blk(h, lambda name, x, ql=ql: ql[name](x))[0]
        return m.head(m.ln(h))  # type: ignore[no-any-return]


def quantize_model(model: TinyLM, calib_ids: torch.Tensor, cfg: CalibrationConfig) -> QuantizedLM:
    """Calibrate every block in order (quantized chain feeds the next block) and build the model.

    ``cfg.epochs = 0`` gives plain min/max round-to-nearest (RTN) quantization.
    """
    blocks: list[Block] = list(model.blocks)  # type: ignore[arg-type]
    with torch.no_grad():
        fp = model.embed(calib_ids)
    q = fp.clone()
    layers: list[dict[str, QuantLinear]] = []
    for i, blk in enumerate(blocks):
        ql = calibrate_block(blk, fp, q, cfg, index=i, n_blocks=len(blocks))
        layers.append(ql)
        with torch.no_grad():
            fp = blk(fp)[0]
            q = blk(q, lambda name, x, ql=ql: ql[name](x))[0]  # type: ignore[misc]
    return QuantizedLM(model, layers)

"""A naive dense reference written from the formulas (official index rules, sort-based).

Nothing here is shared with the package: rows are sorted with ``torch.sort`` and indexed with
``int(d*lo)`` / ``int(d*(1-hi)-1)`` exactly like the official ``clamp`` helper; ``normalize`` is
min–max with no eps (degenerate rows are avoided by the test data); TIES uses ``kthvalue``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ref_clamp(x: Tensor, lo_ratio: float, hi_ratio: float) -> Tensor:
    d = x.shape[1]
    s, _ = torch.sort(x, dim=1)
    lo = s[:, int(d * lo_ratio)].unsqueeze(1)
    hi = s[:, int(d * (1 - hi_ratio) - 1)].unsqueeze(1)
    return torch.max(torch.min(x, hi), lo)


def ref_normalize(x: Tensor) -> Tensor:
    mn = x.min(dim=1, keepdim=True).values
    mx = x.max(dim=1, keepdim=True).values
    return (x - mn) / (mx - mn)


def ref_pcb(
    tv: Tensor, ratio: float, outlier: float, inter: str, lambdas: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (merged task vector, clamped checks, scale)."""
    n, _ = tv.shape
    a = ref_clamp(tv.abs(), outlier, outlier)
    c = torch.sign(tv) * a
    intra = torch.exp(n * ref_normalize(a) ** 2)
    if inter == "sum":
        cross = torch.tanh(tv * tv.sum(dim=0))
    elif inter == "normalized":
        tn = torch.sign(tv) * ref_normalize(a)
        cross = torch.tanh(tv * tn.sum(dim=0))
    else:
        tn = torch.sign(tv) * ref_normalize(a)
        cross = torch.vstack([torch.tanh(tn[i] * tn).sum(dim=0) for i in range(n)])
    beta = intra * cross
    scale = ref_normalize(ref_clamp(beta, 1 - ratio, 0))
    merged = (c * lambdas.unsqueeze(1) * scale).sum(dim=0) / torch.clamp(
        scale.sum(dim=0), min=1e-12
    )
    return merged, c, scale


def ref_ties(tv: Tensor, density: float, lam: Tensor) -> Tensor:
    _n, d = tv.shape
    k = d - int(d * density)
    if k > 0:
        kth = tv.abs().kthvalue(k, dim=1, keepdim=True).values
        trimmed = tv * (tv.abs() >= kth)
    else:
        trimmed = tv.clone()
    sign = torch.sign(trimmed.sum(dim=0))
    sign[sign == 0] = torch.sign(sign.sum())
    keep = torch.where(sign.unsqueeze(0) > 0, trimmed > 0, trimmed < 0)
    sel = trimmed * keep
    count = (sel != 0).sum(dim=0).double()
    return (sel * lam.unsqueeze(1)).sum(dim=0) / torch.clamp(count, min=1)

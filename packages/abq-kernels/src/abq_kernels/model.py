"""A tiny pre-LayerNorm transformer LM (the demo's and tests' calibration target).

Each block routes its six linear layers (``q, k, v, o, fc1, fc2``) through a ``linear`` callback so
the same code runs in float, with fake quantization during calibration, or with
:class:`~abq_kernels.QuantLinear` modules swapped in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

LINEARS = ("q", "k", "v", "o", "fc1", "fc2")
LinearFn = Callable[[str, torch.Tensor], torch.Tensor]


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(
        self, x: torch.Tensor, linear: LinearFn | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the block output and the head-averaged attention map (B, T, T)."""
        lin: LinearFn = linear or (lambda name, h: getattr(self, name)(h))
        b, t, d = x.shape
        hd = d // self.n_heads
        h = self.ln1(x)
        q, k, v = (lin(n, h).view(b, t, self.n_heads, hd).transpose(1, 2) for n in ("q", "k", "v"))
        scores = (q @ k.transpose(-1, -2)) / hd**0.5
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        attn = scores.masked_fill(mask, float("-inf")).softmax(-1)
        a = (attn @ v).transpose(1, 2).reshape(b, t, d)
        x = x + lin("o", a)
        x = x + lin("fc2", F.gelu(lin("fc1", self.ln2(x))))
        return x, attn.mean(1)


class TinyLM(nn.Module):
    def __init__(
        self,
        vocab: int = 32,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        max_len: int = 64,
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for blk in self.blocks:
            h = blk(h)[0]
        logits: torch.Tensor = self.head(self.ln(h))
        return logits


def markov_sequences(
    n: int, length: int, *, vocab: int = 32, seed: int = 0, concentration: float = 0.1
) -> torch.Tensor:
    """Samples of a fixed random order-2 Markov chain (peaked transitions; same table per seed)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.distributions.Dirichlet(torch.full((vocab,), concentration))
    torch.manual_seed(seed)  # Dirichlet sampling uses the global generator: seed it explicitly
    table = probs.sample((vocab, vocab))  # (prev2, prev1) -> next
    seqs = torch.empty(n, length, dtype=torch.long)
    seqs[:, :2] = torch.randint(vocab, (n, 2), generator=g)
    for t in range(2, length):
        p = table[seqs[:, t - 2], seqs[:, t - 1]]
        seqs[:, t] = torch.multinomial(p, 1, generator=g).squeeze(1)
    return seqs


@torch.no_grad()
def evaluate(model: nn.Module, ids: torch.Tensor, *, skip: int = 2) -> tuple[float, float]:
    """Perplexity and next-token accuracy over positions ``skip..`` (the first two are random)."""
    logits = model(ids[:, :-1])[:, skip - 1 :]
    target = ids[:, skip:]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    acc = (logits.argmax(-1) == target).float().mean()
    return float(nll.exp()), float(acc)

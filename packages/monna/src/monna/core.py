"""What both executors share: the configuration, the seeded samplers and the received sets.

One step of MoNNA at honest node :math:`i` (official ``peerToPeer.py``):

1. :math:`g_i = \\nabla \\big(\\ell(x_i; \\xi_i) + \\lambda \\lVert x_i \\rVert_2\\big)` on a minibatch
   of the node's shard (the l2 penalty is the plain, not squared, norm, as the official loss);
2. :math:`m_i \\leftarrow \\beta m_i + (1 - \\beta) g_i`, :math:`x_i^{t+1/2} = x_i - \\gamma_t m_i`;
3. node :math:`i` receives its own half-step, those of :math:`n - 2f - 1` other honest nodes drawn
   uniformly at random, and the :math:`f` Byzantine vectors (:math:`m = n - f` vectors);
4. :math:`x_i \\leftarrow R(\\text{received}, f, \\text{pivot}=\\text{own})`, with :math:`R` = NNA
   for MoNNA.

Randomness: node :math:`i`'s minibatches come from its own generator seeded by ``(seed, i)``; the
received sets come from one generator seeded by ``seed`` that every node replays. So the
simulator and every torch.distributed rank draw exactly the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from monna.aggregators import Aggregator, get_aggregator
from monna.attacks import Attack, get_attack


@dataclass
class MoNNAConfig:
    """Hyperparameters of a MoNNA (or baseline) run; defaults are the official MNIST script's.

    Attributes:
        n: number of nodes, honest and Byzantine.
        f: number of Byzantine nodes (declared and actual); needs ``n >= 3 f + 1``.
        lr: initial learning rate :math:`\\gamma_0` (official MNIST: 0.75).
        beta: momentum :math:`\\beta` in [0, 1) (MoNNA: 0.99; β = 0 gives plain NNA).
        lr_decay, lr_decay_delta: :math:`\\gamma_t = \\gamma_0 / (t/\\text{decay} + 1)`, refreshed
            every ``lr_decay_delta`` steps; ``lr_decay <= 0`` keeps the rate constant.
        batch_size: minibatch size per node and step (official MNIST: 25).
        l2: weight of the plain-norm penalty :math:`\\lambda \\lVert x \\rVert_2` (official: 1e-4).
        aggregator: the mixing rule (name or :class:`~monna.aggregators.Aggregator`); ``"nna"``.
        attack: the Byzantine attack (name, :class:`~monna.attacks.Attack` or ``None``). With
            ``None`` the Byzantine nodes send nothing and every honest node hears from all other
            honest nodes (the official ``f_real = 0`` run), while ``f`` stays declared.
        seed: seed of minibatches and received sets.
    """

    n: int
    f: int
    lr: float = 0.75
    beta: float = 0.99
    lr_decay: float = 50.0
    lr_decay_delta: int = 50
    batch_size: int = 25
    l2: float = 1e-4
    aggregator: str | Aggregator = "nna"
    attack: str | Attack | None = None
    seed: int = 0
    aggregator_kwargs: dict[str, Any] = field(default_factory=dict)
    attack_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("n", "f", "batch_size", "lr_decay_delta", "seed"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
        if self.f < 0:
            raise ValueError(f"f must be non-negative, got f={self.f}")
        if self.n < 1:
            raise ValueError(f"n must be positive, got n={self.n}")
        if self.n < 3 * self.f + 1:
            raise ValueError(
                f"n={self.n} and f={self.f} violate n >= 3f + 1 = {3 * self.f + 1}: the n - f "
                "received vectors would not hold an honest majority"
            )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.beta, (int, float)) and 0.0 <= self.beta < 1.0):
            raise ValueError(f"beta must be in [0, 1), got {self.beta!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.lr_decay_delta < 1:
            raise ValueError(f"lr_decay_delta must be positive, got {self.lr_decay_delta}")
        if not (isinstance(self.l2, (int, float)) and self.l2 >= 0):
            raise ValueError(f"l2 must be non-negative, got {self.l2!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        self.aggregator = get_aggregator(self.aggregator, **self.aggregator_kwargs)
        self.attack = get_attack(self.attack, **self.attack_kwargs)

    @property
    def rule(self) -> Aggregator:
        """The resolved aggregator (``aggregator`` after ``__post_init__``)."""
        assert isinstance(self.aggregator, Aggregator)
        return self.aggregator

    @property
    def adversary(self) -> Attack | None:
        """The resolved attack (``attack`` after ``__post_init__``), or ``None``."""
        assert self.attack is None or isinstance(self.attack, Attack)
        return self.attack

    @property
    def honest(self) -> int:
        """:math:`H = n - f`."""
        return self.n - self.f

    @property
    def f_real(self) -> int:
        """Byzantine vectors actually sent: ``f`` with an attack, 0 without."""
        return self.f if self.attack is not None else 0

    @property
    def n_sampled(self) -> int:
        """Other honest half-steps each node receives: :math:`H - f_{real} - 1`."""
        return self.honest - self.f_real - 1

    @property
    def pivot(self) -> int:
        """Index of the node's own vector in its received set (after the sampled honest ones)."""
        return self.n_sampled


def node_seed(seed: int, node: int) -> int:
    """The 63-bit seed of node ``node``'s minibatch generator."""
    return int(
        np.random.SeedSequence([seed, 1, node]).generate_state(2, np.uint64)[0] >> np.uint64(1)
    )


def comm_seed(seed: int) -> int:
    """The 63-bit seed of the received-set generator that every node replays."""
    return int(np.random.SeedSequence([seed, 2]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def sample_received(gen: torch.Generator, H: int, k: int) -> torch.Tensor:
    """For every honest node ``j``: ``k`` distinct other honest indices, uniformly. ``(H, k)``."""
    out = torch.empty(H, k, dtype=torch.long)
    for j in range(H):
        perm = torch.randperm(H - 1, generator=gen)[:k]
        out[j] = perm + (perm >= j).long()
    return out


def received_sets(
    half: torch.Tensor, byz: torch.Tensor, received: torch.Tensor, nodes: torch.Tensor
) -> torch.Tensor:
    """Received sets ``(len(nodes), m, d)``: sampled honest rows, own row, then Byzantine rows."""
    parts = [half[received[nodes]], half[nodes].unsqueeze(1)]
    if byz.shape[0]:
        parts.append(byz.unsqueeze(0).expand(len(nodes), -1, -1))
    return torch.cat(parts, dim=1)


class MinibatchSampler:
    """Node ``node``'s minibatches: ``batch_size`` distinct indices of its shard per step."""

    def __init__(self, shard: np.ndarray | torch.Tensor, batch_size: int, seed: int, node: int):
        self.shard = torch.as_tensor(np.asarray(shard), dtype=torch.long)
        if self.shard.numel() == 0:
            raise ValueError(f"the shard of node {node} is empty")
        self.batch = min(batch_size, self.shard.numel())
        self.gen = torch.Generator().manual_seed(node_seed(seed, node))

    def __call__(self) -> torch.Tensor:
        return self.shard[torch.randperm(self.shard.numel(), generator=self.gen)[: self.batch]]


class FlatModel:
    """Maps a flat parameter vector ``(d,)`` to the module's named parameters and back."""

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.names = [n for n, _ in model.named_parameters()]
        if not self.names:
            raise ValueError("model has no parameters")
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.numels = [p.numel() for _, p in model.named_parameters()]
        self.dtype = next(model.parameters()).dtype
        self.d = sum(self.numels)

    def flatten(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).clone()

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.numels), self.shapes)
        }

    def signature(self) -> str:
        return (
            ";".join(f"{n}:{tuple(s)}" for n, s in zip(self.names, self.shapes)) + f"|{self.dtype}"
        )

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
        """Cross-entropy of the logits plus the official plain-norm penalty ``l2 * ||flat||``."""
        logits = torch.func.functional_call(self.model, self.unflatten(flat), (x,))
        loss = nn.functional.cross_entropy(logits, y)
        if l2:
            loss = loss + l2 * flat.norm()
        return loss

    def grad(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
        """:math:`\\nabla` of :meth:`loss` at ``flat`` (plain autograd: one node, one backward)."""
        with torch.enable_grad():
            p = flat.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.loss(p, x, y, l2), p)
        return g

    def logits(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.func.functional_call(self.model, self.unflatten(flat), (x,))  # type: ignore[no-any-return]


def check_data(
    X: torch.Tensor, y: torch.Tensor, shards: Sequence[Any], H: int
) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], int]:
    """Validate features, labels and shards; returns them with the number of classes."""
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.ndim < 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X must be (N, ...) and y (N,), got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if len(shards) != H:
        raise ValueError(
            f"shards must hold one index array per honest node ({H}), got {len(shards)}"
        )
    out = []
    for i, s in enumerate(shards):
        a = np.asarray(s)
        if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(
                f"shards[{i}] must be a non-empty 1-D integer index array, got {a!r:.80}"
            )
        if a.min() < 0 or a.max() >= X.shape[0]:
            raise ValueError(f"shards[{i}] indexes outside [0, {X.shape[0]})")
        out.append(a)
    return X, y.long(), out, int(y.max()) + 1


__all__ = [
    "FlatModel",
    "MinibatchSampler",
    "MoNNAConfig",
    "check_data",
    "comm_seed",
    "node_seed",
    "received_sets",
    "sample_received",
]

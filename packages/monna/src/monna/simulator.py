"""In-process executor: every honest node vectorised in one process (tests, demos, sweeps).

All ``H`` honest models live in one ``(H, d)`` tensor; gradients come from one backward pass per node; the received sets are
built as one ``(H, n - f, d)`` batch and mixed in one call. The numbers drawn are exactly those
of :class:`monna.distributed.DistributedMoNNA` with the same seed (see :mod:`monna.core`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from monna.attacks import AttackContext
from monna.core import (
    FlatModel,
    MinibatchSampler,
    MoNNAConfig,
    check_data,
    comm_seed,
    received_sets,
    sample_received,
)
from monna.functional import learning_rate, momentum_half_step


class Simulator:
    """MoNNA (or a baseline mixing rule) with ``H = n - f`` honest nodes in one process.

    Args:
        model: the architecture; its current parameters are every node's :math:`x^0` (cloned:
            the official code's step-0 aliasing is not reproduced). Must return logits. The
            run happens on the model's device (the data are moved there).
        X, y: the training data (features, integer labels), shared by index.
        shards: one index array per honest node (e.g. :func:`papershelf.data.dirichlet_split`).
        config: a :class:`~monna.core.MoNNAConfig`.

    Attributes:
        params_: ``(H, d)`` honest parameters after the last step.
        momentum_: ``(H, d)`` momenta.
        step_: steps done.
        history_: per step, ``{"step", "lr", "tau"}`` (``tau``: the attack's line-searched factor).
    """

    def __init__(
        self,
        model: nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        shards: Sequence[Any],
        config: MoNNAConfig,
    ) -> None:
        if not isinstance(config, MoNNAConfig):
            raise TypeError(f"config must be a MoNNAConfig, got {type(config).__name__}")
        self.config = config
        self.flat = FlatModel(model)
        H = config.honest
        self.X, self.y, self.shards, self.n_classes = check_data(X, y, shards, H)
        self.device = next(model.parameters()).device
        self.X = self.X.to(self.device, self.flat.dtype)
        self.y = self.y.to(self.device)
        x0 = self.flat.flatten()
        self.params_ = x0.unsqueeze(0).repeat(H, 1)
        self.momentum_ = torch.zeros_like(self.params_)
        self.step_ = 0
        self.history_: list[dict[str, Any]] = []
        self._samplers = [
            MinibatchSampler(s, config.batch_size, config.seed, i)
            for i, s in enumerate(self.shards)
        ]
        self._comm = torch.Generator().manual_seed(comm_seed(config.seed))

    def _grads(self, params: torch.Tensor, idx: list[torch.Tensor], flip: bool) -> torch.Tensor:
        # One backward per node, exactly as each distributed rank computes it (so the two
        # executors agree to the last bit); torch.func.vmap would import torch._dynamo (seconds).
        l2 = float(self.config.l2)
        out = []
        for p, i in zip(params, idx):
            t = self.y[i]
            if flip:
                t = self.n_classes - 1 - t
            out.append(self.flat.grad(p, self.X[i], t, l2))
        return torch.stack(out)

    def step(self) -> Simulator:
        """One MoNNA step for every honest node."""
        cfg = self.config
        H = cfg.honest
        lr = learning_rate(self.step_, cfg.lr, cfg.lr_decay, cfg.lr_decay_delta)
        idx = [s() for s in self._samplers]
        grads = self._grads(self.params_, idx, flip=False)
        half, self.momentum_ = momentum_half_step(
            self.params_, self.momentum_, grads, lr=lr, beta=cfg.beta
        )
        tau = None
        if cfg.adversary is not None:
            flipped = (
                self._grads(self.params_, idx, flip=True)
                if cfg.adversary.needs_flipped_grads
                else None
            )
            ctx = AttackContext(lr=lr, flipped_grads=flipped, step=self.step_)
            byz_vec = cfg.adversary(half, cfg.f, cfg.rule, ctx)
            tau = getattr(cfg.adversary, "last_tau", None)
            byz = byz_vec.unsqueeze(0).expand(cfg.f, -1)
        else:
            byz = half[:0]
        received = sample_received(self._comm, H, cfg.n_sampled)
        sets = received_sets(half, byz, received, torch.arange(H))
        with torch.no_grad():
            self.params_ = cfg.rule(sets, cfg.f, cfg.pivot)
        self.history_.append({"step": self.step_, "lr": lr, "tau": tau})
        self.step_ += 1
        return self

    def run(self, steps: int, *, callback: Callable[[Simulator], None] | None = None) -> Simulator:
        """``steps`` steps; ``callback(self)`` after each."""
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        for _ in range(steps):
            self.step()
            if callback is not None:
                callback(self)
        return self

    # ---------------------------------------------------------------- evaluation
    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """``(H, N, K)`` logits of every honest model."""
        X = torch.as_tensor(X).to(self.device, self.flat.dtype)
        return torch.stack([self.flat.logits(p, X) for p in self.params_])

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """``(H, N, K)`` class probabilities of every honest model."""
        return torch.softmax(self.logits(X), dim=-1)

    def accuracy(self, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Accuracy of every honest model, shape ``(H,)`` (a non-finite model scores its argmax)."""
        pred = self.logits(X).argmax(dim=-1).cpu()
        return (pred == torch.as_tensor(y).cpu()).double().mean(dim=1).numpy()  # type: ignore[no-any-return]

    def disagreement(self) -> float:
        """:math:`\\max_i \\lVert x_i - \\bar x \\rVert_2` over honest nodes."""
        return float((self.params_ - self.params_.mean(0)).norm(dim=1).max())

    def honest_model(self, i: int) -> nn.Module:
        """A copy of the module holding honest node ``i``'s parameters."""
        if not 0 <= i < self.config.honest:
            raise ValueError(f"i must be in [0, {self.config.honest}), got {i}")
        model = copy.deepcopy(self.flat.model)
        torch.nn.utils.vector_to_parameters(self.params_[i].clone(), model.parameters())
        return model


__all__ = ["Simulator"]

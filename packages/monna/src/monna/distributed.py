"""Real distributed executor on ``torch.distributed``: one rank per honest node.

Launch with ``torchrun --nproc-per-node H ...`` (gloo on CPU, NCCL on GPU). Per step each rank
computes its gradient and half-step, then the ranks exchange half-steps with one all-gather of a
flat ``(d,)`` buffer; every rank synthesises the ``f`` Byzantine vectors itself from the gathered
honest half-steps (the paper's omniscient adversary: all ranks compute the same vector from the
same data, so no extra round is needed), replays the shared received-set draw and mixes its own
received set. The same seed gives the same trajectory as :class:`monna.simulator.Simulator`.

Faults: before every collective a rank records the step it reached in the rendezvous store. When
a collective fails (a peer closed its connection) or times out (a peer stopped sending; the
limit is the process group's ``timeout``), the surviving ranks read those records and raise
:class:`PeerFailureError` naming the ranks that did not reach the step.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
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

_KEY = "monna/reached/{}"


class PeerFailureError(RuntimeError):
    """A peer rank died or stopped sending; ``ranks`` lists the ranks that did not respond."""

    def __init__(self, message: str, ranks: Sequence[int]) -> None:
        super().__init__(message)
        self.ranks = list(ranks)


def init_process_group(backend: str | None = None, *, timeout: float = 60.0) -> None:
    """``torch.distributed.init_process_group`` from torchrun's environment.

    Args:
        backend: ``"gloo"``/``"nccl"``; default NCCL when CUDA is available, else gloo.
        timeout: seconds a collective may wait for a peer before failing.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout))


def _default_store() -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # pragma: no cover - private API moved
        return None


class DistributedMoNNA:
    """MoNNA with one ``torch.distributed`` rank per honest node (``world size = n - f``).

    Args:
        model: the architecture; rank 0's parameters are broadcast as everyone's :math:`x^0`.
        X, y, shards: the data and one shard per honest node; rank ``r`` trains on ``shards[r]``.
        config: a :class:`~monna.core.MoNNAConfig`.
        group: the process group (default: the world).

    Attributes:
        rank: this node's index. params_: ``(d,)`` its parameters. momentum_: ``(d,)``.
        step_: steps done.
    """

    def __init__(
        self,
        model: nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        shards: Sequence[Any],
        config: MoNNAConfig,
        *,
        group: Any = None,
    ) -> None:
        if not isinstance(config, MoNNAConfig):
            raise TypeError(f"config must be a MoNNAConfig, got {type(config).__name__}")
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "torch.distributed is not initialised: call monna.distributed.init_process_group() "
                "(under torchrun) or torch.distributed.init_process_group() first"
            )
        self.config = config
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        H = config.honest
        if self.world != H:
            raise ValueError(
                f"world size {self.world} does not match the n - f = {config.n} - {config.f} = {H} "
                "honest nodes (one rank per honest node; Byzantine nodes are simulated on every rank)"
            )
        backend = dist.get_backend(group)
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )
        self.flat = FlatModel(model.to(self.device))
        self.X, self.y, self.shards, self.n_classes = check_data(X, y, shards, H)
        self.X = self.X.to(self.device, self.flat.dtype)
        self.y = self.y.to(self.device)
        self._store = _default_store()
        self.step_ = 0
        self._check_shapes()
        x0 = self.flat.flatten().to(self.device)
        dist.broadcast(
            x0, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group
        )
        self.params_ = x0
        self.momentum_ = torch.zeros_like(x0)
        self._sampler = MinibatchSampler(
            self.shards[self.rank], config.batch_size, config.seed, self.rank
        )
        self._comm = torch.Generator().manual_seed(comm_seed(config.seed))
        self._buf = torch.empty(self.world, self.flat.d, dtype=self.flat.dtype, device=self.device)

    # ------------------------------------------------------------------ communication
    def _check_shapes(self) -> None:
        sig = zlib.crc32(self.flat.signature().encode())
        mine = torch.tensor([self.flat.d, sig], dtype=torch.int64, device=self.device)
        allv = [torch.empty_like(mine) for _ in range(self.world)]
        self._collective(lambda: dist.all_gather(allv, mine, group=self.group))
        table = torch.stack(allv).cpu()
        bad = [r for r in range(self.world) if not torch.equal(table[r], table[0])]
        if bad:
            raise ValueError(
                f"parameter shapes differ across ranks: ranks {bad} disagree with rank 0 "
                f"(numel per rank: {table[:, 0].tolist()}); every rank must build the same model"
            )

    def _collective(self, fn: Any) -> None:
        if self._store is not None:
            self._store.set(_KEY.format(self.rank), str(self.step_))
        try:
            fn()
        except Exception as exc:  # gloo raises RuntimeError / DistBackendError subclasses
            raise self._diagnose(exc) from exc

    def _diagnose(self, exc: BaseException) -> PeerFailureError:
        missing: list[int] = []
        notes: list[str] = []
        if self._store is not None:
            try:
                self._store.set_timeout(timedelta(seconds=2))
                for r in range(self.world):
                    key = _KEY.format(r)
                    if not self._store.check([key]):
                        missing.append(r)
                        notes.append(f"rank {r} never reached step 0")
                        continue
                    reached = int(self._store.get(key).decode())
                    if reached < self.step_:
                        missing.append(r)
                        notes.append(f"rank {r} last reached step {reached}")
                # Rank 0 may host the store (plain env:// launches): it keeps it up until the
                # other survivors have read the records, or a few seconds have passed.
                key = f"monna/diagnosed/{self.step_}"
                done = self._store.add(key, 1)
                if self.rank == 0:
                    survivors = self.world - len(missing)
                    deadline = time.monotonic() + 5.0
                    while done < survivors and time.monotonic() < deadline:
                        time.sleep(0.05)
                        done = self._store.add(key, 0)
            except Exception as store_exc:  # the store (rank 0 or the launcher) is gone too
                notes.append(f"the rendezvous store is unreachable as well ({store_exc})")
        who = f"rank(s) {missing}" if missing else "a peer rank"
        return PeerFailureError(
            f"rank {self.rank}: {who} failed or stopped sending at step {self.step_} "
            f"({'; '.join(notes) or 'no progress records'}); collective error: {exc}",
            missing,
        )

    def _all_gather(self, vec: torch.Tensor) -> torch.Tensor:
        out = self._buf.clone()
        if dist.get_backend(self.group) == "nccl":
            self._collective(
                lambda: dist.all_gather_into_tensor(out, vec.contiguous(), group=self.group)
            )
        else:
            self._collective(
                lambda: dist.all_gather(list(out.unbind(0)), vec.contiguous(), group=self.group)
            )
        return out

    # ------------------------------------------------------------------ training
    def step(self) -> DistributedMoNNA:
        """One MoNNA step of this node (a collective: every rank must call it)."""
        cfg = self.config
        lr = learning_rate(self.step_, cfg.lr, cfg.lr_decay, cfg.lr_decay_delta)
        idx = self._sampler().to(self.device)
        l2 = float(cfg.l2)
        grad = self.flat.grad(self.params_, self.X[idx], self.y[idx], l2)
        half, self.momentum_ = momentum_half_step(
            self.params_, self.momentum_, grad, lr=lr, beta=cfg.beta
        )
        halves = self._all_gather(half)
        if cfg.adversary is not None:
            flipped = None
            if cfg.adversary.needs_flipped_grads:
                yflip = self.n_classes - 1 - self.y[idx]
                flipped = self._all_gather(self.flat.grad(self.params_, self.X[idx], yflip, l2))
            ctx = AttackContext(lr=lr, flipped_grads=flipped, step=self.step_)
            byz = cfg.adversary(halves, cfg.f, cfg.rule, ctx).unsqueeze(0).expand(cfg.f, -1)
        else:
            byz = halves[:0]
        received = sample_received(self._comm, cfg.honest, cfg.n_sampled).to(self.device)
        sets = received_sets(halves, byz, received, torch.tensor([self.rank], device=self.device))
        with torch.no_grad():
            self.params_ = cfg.rule(sets, cfg.f, cfg.pivot)[0]
        self.step_ += 1
        return self

    def run(self, steps: int) -> DistributedMoNNA:
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        for _ in range(steps):
            self.step()
        return self

    def accuracy(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """This node's accuracy on ``(X, y)``."""
        X = torch.as_tensor(X).to(self.device, self.flat.dtype)
        pred = self.flat.logits(self.params_, X).argmax(-1).cpu()
        return float((pred == torch.as_tensor(y)).double().mean())

    def state_dict(self) -> dict[str, Any]:
        """Parameters, momentum and step (the momentum must be checkpointed with the model)."""
        return {
            "params": self.params_.clone(),
            "momentum": self.momentum_.clone(),
            "step": self.step_,
        }


def save_array(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically (temporary file, then rename; no pickles)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
    os.replace(tmp, path)


__all__ = ["DistributedMoNNA", "PeerFailureError", "init_process_group", "save_array"]

"""``torch.optim`` classes for AdamP and SGDP (Heo et al., ICLR 2021, arXiv:2006.08217).

The classes validate arguments, own the state and call :mod:`adamp_opt.functional`, where the
equations are written out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

import torch
from torch import Tensor
from torch.optim import Optimizer

from adamp_opt import functional as F
from adamp_opt._batched import adamp_batched

__all__ = ["SGDP", "AdamP"]

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _at_least(name: str, value: Any, low: float) -> None:
    if _real(name, value) < low:
        raise ValueError(f"Invalid {name}: {name} must be >= {low}, got {value!r}")


def _flag(name: str, value: Any, *, allow_none: bool = False) -> None:
    if not (isinstance(value, bool) or (allow_none and value is None)):
        kind = "a bool or None" if allow_none else "a bool"
        raise TypeError(f"{name} must be {kind}, got {value!r}")


def _check_projection_options(group: Mapping[str, Any]) -> None:
    if group["projection"] not in F.PROJECTION_MODES:
        raise ValueError(
            f"Invalid projection: must be one of {F.PROJECTION_MODES}, got {group['projection']!r}"
        )
    cd = group["channel_dim"]
    if isinstance(cd, bool) or not isinstance(cd, int) or cd < 0:
        raise ValueError(f"Invalid channel_dim: must be a non-negative int, got {cd!r}")
    for p in group["params"]:
        if p.ndim > 1 and cd >= p.ndim:
            raise ValueError(
                f"Invalid channel_dim: {cd} is out of range for a parameter of shape {tuple(p.shape)}; "
                "put parameters of lower rank in another param group"
            )
    _at_least("eps", group["eps"], 0.0)
    if _real("delta", group["delta"]) <= 0:
        raise ValueError(f"Invalid delta: delta must be > 0, got {group['delta']!r}")
    if not 0.0 <= _real("wd_ratio", group["wd_ratio"]) <= 1.0:
        raise ValueError(f"Invalid wd_ratio: wd_ratio must be in [0, 1], got {group['wd_ratio']!r}")
    _flag("nesterov", group["nesterov"])
    _flag("maximize", group["maximize"])
    _flag("foreach", group["foreach"], allow_none=True)


def _check_grad(p: Tensor, name: str, where: str) -> None:
    if p.grad is not None and p.grad.is_sparse:
        raise TypeError(f"{name} does not support sparse gradients ({where} has a sparse grad)")
    if p.is_complex():
        raise TypeError(f"{name} does not support complex parameters ({where} is {p.dtype})")


class _ProjectingOptimizer(Optimizer):
    """Shared plumbing: group validation, defaults of new options, and the decision report."""

    _name = "optimizer"

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("projection", "auto")
            group.setdefault("channel_dim", 0)

    def _flat_cache(self, group_index: int) -> dict[Any, Any]:
        """Per-group cache of persistent flat buffers (not part of the state: never pickled).

        ``Optimizer.__getstate__`` keeps only defaults, state and param groups, so a copied or
        unpickled optimizer starts with an empty cache and rebuilds its buffers on its first
        step from the (copied) state values.
        """
        caches: dict[int, dict[Any, Any]] = self.__dict__.setdefault("_flat_caches", {})
        return caches.setdefault(group_index, {})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its options are validated here, where they enter."""
        merged = {**self.defaults, **param_group}
        params = merged["params"]
        merged["params"] = [params] if isinstance(params, Tensor) else list(params)
        merged["params"] = [p[1] if isinstance(p, tuple) else p for p in merged["params"]]
        self._check_group(merged)
        super().add_param_group(param_group)

    def _check_group(self, group: Mapping[str, Any]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _decay(self, group: Mapping[str, Any]) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_decay(self, group: Mapping[str, Any]) -> None:
        decay = self._decay(group)
        if decay > 1.0:
            raise ValueError(
                f"Invalid lr and weight_decay: the decoupled decay factor 1 - {decay:g} is negative "
                f"(lr={group['lr']!r}, weight_decay={group['weight_decay']!r}); lower one of them"
            )

    @staticmethod
    def _use_foreach(group: Mapping[str, Any]) -> bool:
        return True if group["foreach"] is None else bool(group["foreach"])

    def _store(
        self,
        params: list[Tensor],
        decisions: list[Tensor | None],
        states: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record the decisions; ``states`` (the parameters' state dicts) saves the look-ups."""
        if states is not None:
            for st, d in zip(states, decisions, strict=True):
                if d is None:
                    st.pop("projection", None)
                else:
                    st["projection"] = d
            return
        for p, d in zip(params, decisions, strict=True):
            if d is None:
                if p in self.state:
                    self.state[p].pop("projection", None)
            else:
                self.state[p]["projection"] = d

    @overload
    def projection_decisions(self) -> dict[str, str]: ...
    @overload
    def projection_decisions(
        self, named_parameters: Iterable[tuple[str, Tensor]]
    ) -> dict[str, str]: ...

    def projection_decisions(
        self, named_parameters: Iterable[tuple[str, Tensor]] | None = None
    ) -> dict[str, str]:
        """The last step's decision per parameter: ``"channel"``, ``"layer"`` or ``"none"``.

        Pass ``model.named_parameters()`` to key the result by name; otherwise the keys are
        ``"group{i}.param{j}"``. Parameters that were never stepped, have ``ndim <= 1`` or sit in
        a ``projection="off"`` group report ``"none"``. All decisions are read with one host
        synchronisation, so call this when logging, not inside the training step.
        """
        if named_parameters is None:
            keyed = [
                (f"group{i}.param{j}", p)
                for i, g in enumerate(self.param_groups)
                for j, p in enumerate(g["params"])
            ]
        else:
            keyed = list(named_parameters)
        codes = [self.state[p].get("projection") if p in self.state else None for _, p in keyed]
        present = [c for c in codes if c is not None]
        values = iter(
            torch.stack([c.detach().to("cpu", torch.float64) for c in present]).tolist()
            if present
            else []
        )
        return {
            name: F.DECISION_NAMES[round(next(values))] if c is not None else "none"
            for (name, _), c in zip(keyed, codes)
        }


class AdamP(_ProjectingOptimizer):
    r"""AdamP: Adam with decoupled weight decay whose update loses its radial part on scale-invariant weights.

    Equal to the official ``adamp.AdamP`` (clovaai/AdamP 0.3.0) with the same arguments; the
    update is written out in :mod:`adamp_opt.functional`.

    Args:
        params: parameters or parameter groups (dicts may override every option below).
        lr: learning rate :math:`\eta` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` of the first and second moment (default (0.9, 0.999)).
        eps: added to :math:`\sqrt{v_t}/\sqrt{1-\beta_2^t}` (after the bias correction, as in
            ``torch.optim.Adam``); also the :math:`\epsilon` of the cosine test and of the
            projection (default 1e-8).
        weight_decay: decoupled decay :math:`\lambda`: ``w <- w (1 - lr * weight_decay * r)``,
            with ``r = wd_ratio`` on projected weights and 1 otherwise (default 0).
        delta: the cosine threshold :math:`\delta`; a view is scale-invariant when every
            :math:`|\cos(g, w)|` is below :math:`\delta/\sqrt{\text{dim}}` (default 0.1).
        wd_ratio: weight-decay multiplier on projected weights (default 0.1).
        nesterov: use the Nesterov form of the first moment (default False).
        maximize: maximise the objective instead (keyword-only).
        foreach: ``True`` or ``None`` (default) for the multi-tensor path, ``False`` for the
            per-tensor loop; both give the same result.
        projection: ``"auto"`` (official detection), ``"channel"`` / ``"layer"`` to force that
            projection on every ``ndim > 1`` parameter of the group, or ``"off"``.
        channel_dim: dimension of the channel view (0; use 1 for ``ConvTranspose`` weights,
            whose output channels are dim 1).
    """

    _name = "AdamP"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        projection: F.ProjectionMode = "auto",
        channel_dim: int = 0,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "delta": delta,
            "wd_ratio": wd_ratio, "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
            "projection": projection, "channel_dim": channel_dim,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any]) -> None:
        _at_least("lr", group["lr"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= _real(f"betas[{i}]", b) < 1.0:
                raise ValueError(
                    f"Invalid beta parameter at index {i}: must be in [0, 1), got {b!r}"
                )
        _at_least("weight_decay", group["weight_decay"], 0.0)
        _check_projection_options(group)
        self._check_decay(group)

    def _decay(self, group: Mapping[str, Any]) -> float:
        return float(group["lr"]) * float(group["weight_decay"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimisation step; ``closure`` (re-evaluating the loss) is called once if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            self._check_decay(group)
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            steps: list[Tensor] = []
            states: list[dict[str, Any]] = []
            for j, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                _check_grad(p, self._name, f"parameter {j} of group {gi}")
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
                states.append(state)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            kw: dict[str, Any] = {
                "lr": float(group["lr"]), "beta1": float(beta1), "beta2": float(beta2),
                "eps": float(group["eps"]), "weight_decay": float(group["weight_decay"]),
                "delta": float(group["delta"]), "wd_ratio": float(group["wd_ratio"]),
                "nesterov": group["nesterov"], "maximize": group["maximize"],
                "projection": group["projection"], "channel_dim": group["channel_dim"],
            }  # fmt: skip
            if self._use_foreach(group):
                # the moments of small tensors live in persistent flat buffers (views in `states`)
                decisions = adamp_batched(
                    params, grads, exp_avgs, exp_avg_sqs, steps, states=states,
                    flat_cache=self._flat_cache(gi), **kw,
                )  # fmt: skip
            else:
                decisions = F.adamp(
                    params, grads, exp_avgs, exp_avg_sqs, steps, foreach=False, **kw
                )
            self._store(params, decisions, states)
        return loss


class SGDP(_ProjectingOptimizer):
    r"""SGDP: SGD with momentum whose update loses its radial part on scale-invariant weights.

    Equal to the official ``adamp.SGDP`` (clovaai/AdamP 0.3.0) with the same arguments; the
    update is written out in :mod:`adamp_opt.functional`. Note the official semantics, which
    differ from ``torch.optim.SGD``: the weight decay is *decoupled* and divided by
    ``1 - momentum`` (``w <- w (1 - lr * weight_decay * r / (1 - momentum))``), and dampening
    applies from the first step (the buffer starts at zero).

    Args:
        params: parameters or parameter groups (dicts may override every option below).
        lr: learning rate :math:`\eta` (required, as in the official code).
        momentum: momentum :math:`\mu` in [0, 1) (default 0).
        dampening: dampening of the gradient in the buffer, in [0, 1] (default 0).
        weight_decay: decoupled decay :math:`\lambda` (default 0).
        nesterov: use ``g + momentum * buf`` as the direction (default False).
        eps: :math:`\epsilon` of the cosine test and of the projection (default 1e-8).
        delta: the cosine threshold :math:`\delta` (default 0.1).
        wd_ratio: weight-decay multiplier on projected weights (default 0.1).
        maximize, foreach, projection, channel_dim: as in :class:`AdamP` (keyword-only).
    """

    _name = "SGDP"

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        eps: float = 1e-8,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        projection: F.ProjectionMode = "auto",
        channel_dim: int = 0,
    ) -> None:
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
            "nesterov": nesterov, "eps": eps, "delta": delta, "wd_ratio": wd_ratio, "maximize": maximize,
            "foreach": foreach, "projection": projection, "channel_dim": channel_dim,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any]) -> None:
        _at_least("lr", group["lr"], 0.0)
        if not 0.0 <= _real("momentum", group["momentum"]) < 1.0:
            raise ValueError(f"Invalid momentum: must be in [0, 1), got {group['momentum']!r}")
        if not 0.0 <= _real("dampening", group["dampening"]) <= 1.0:
            raise ValueError(f"Invalid dampening: must be in [0, 1], got {group['dampening']!r}")
        _at_least("weight_decay", group["weight_decay"], 0.0)
        _check_projection_options(group)
        self._check_decay(group)

    def _decay(self, group: Mapping[str, Any]) -> float:
        return float(group["lr"]) * float(group["weight_decay"]) / (1.0 - float(group["momentum"]))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimisation step; ``closure`` (re-evaluating the loss) is called once if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            self._check_decay(group)
            momentum = float(group["momentum"])
            params: list[Tensor] = []
            grads: list[Tensor] = []
            bufs: list[Tensor | None] = []
            for j, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                _check_grad(p, self._name, f"parameter {j} of group {gi}")
                params.append(p)
                grads.append(p.grad)
                if momentum > 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format
                        )
                    bufs.append(state["momentum_buffer"])
                else:
                    bufs.append(None)
            if not params:
                continue
            decisions = F.sgdp(
                params, grads, bufs, lr=float(group["lr"]), momentum=momentum,
                dampening=float(group["dampening"]), weight_decay=float(group["weight_decay"]),
                nesterov=group["nesterov"], eps=float(group["eps"]), delta=float(group["delta"]),
                wd_ratio=float(group["wd_ratio"]), maximize=group["maximize"], projection=group["projection"],
                channel_dim=group["channel_dim"], foreach=self._use_foreach(group),
            )  # fmt: skip
            self._store(params, decisions)
        return loss

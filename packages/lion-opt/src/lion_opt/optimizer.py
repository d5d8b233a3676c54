r"""``Lion``: the Lion / Lion-𝒦 optimizer as a ``torch.optim.Optimizer``.

The math lives in :func:`lion_opt.functional.lion_step`; this class owns the momentum state,
the parameter groups and the hyperparameter checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lion_opt.functional import apply_update, validate_hyperparameters
from lion_opt.kappa import Kappa, get_kappa

__all__ = ["Lion", "constraint_violation"]

_STATE_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
_PLAIN_TYPES = (Tensor, torch.nn.Parameter)


def _kappa_entry(kappa: Any) -> str | Kappa:
    """What a param group stores: the canonical spec for built-ins (so ``state_dict`` holds only
    plain data and loads with ``torch.load(weights_only=True)``), else the object itself."""
    k = get_kappa(kappa)
    return k.spec or k


def _check_state_dtype(state_dtype: Any) -> None:
    if state_dtype is not None and state_dtype not in _STATE_DTYPES:
        raise ValueError(
            f"state_dtype must be None (the parameter's dtype) or one of {[str(d) for d in _STATE_DTYPES]}, "
            f"got {state_dtype!r}"
        )


class Lion(Optimizer):
    r"""Lion (EvoLved Sign Momentum) and its Lion-𝒦 generalisation.

    Implements Chen et al. 2023 ("Symbolic Discovery of Optimization Algorithms",
    arXiv:2302.06675) and Chen, Liu, Liang, Liu, ICLR 2024 ("Lion Secretly Solves Constrained
    Optimization: As Lyapunov Predicts", arXiv:2310.05898). Per parameter, with ``η = lr`` and
    ``λ = weight_decay``:

    .. math::

        x \leftarrow x(1-\eta\lambda),\quad
        x \leftarrow x - \eta\,\nabla\mathcal K(\beta_1 m + (1-\beta_1) g),\quad
        m \leftarrow \beta_2 m + (1-\beta_2) g.

    With ``kappa="sign"`` (Lion) the iterates solve ``min f(x) s.t. ‖x‖∞ ≤ 1/λ``: the box is
    entered at rate ``1−ηλ`` per step and never left (for ``ηλ ≤ 1``, any gradients, any lr
    schedule). Other ``kappa`` solve ``min f(x) + (1/λ)𝒦*(λx)``; see :mod:`lion_opt.kappa`.

    Args:
        params: parameters or parameter groups (dicts may override every option below).
        lr: learning rate ``η`` (default 1e-4, as the official code; use 3–10× less than AdamW).
        betas: ``(β1, β2)`` in ``[0, 1)`` (default (0.9, 0.99); (0.95, 0.98) for stability).
        weight_decay: decoupled decay ``λ ≥ 0``, applied as ``x ← x(1 − lr·λ)`` (default 0).
            ``1/λ`` is the radius of the constraint; ``lr·λ ≤ 1`` is required at every step.
        kappa: Lion-𝒦 member: ``"sign"`` (Lion), ``"l2"``, ``"lp(p)"``, ``"clip(delta)"``,
            ``"deadzone(e)"``, ``"tanh(beta)"``, ``"identity"``, or a :class:`lion_opt.Kappa`.
        maximize: maximise the objective instead of minimising it.
        foreach: use the multi-tensor path; ``None`` picks it when every parameter is a plain
            ``Tensor``/``Parameter`` (results are identical either way).
        state_dtype: the least precision of the momentum: it is kept in the wider of the
            parameter's dtype and this one (``None``: the parameter's). ``torch.float32`` keeps
            float32 momentum for bfloat16/float16 parameters and computes the update in float32,
            rounding into the parameter once per step; float64 parameters are unaffected.

    Raises:
        ValueError / TypeError: invalid hyperparameters (checked here, for every parameter
            group added later, and at each step, since schedulers change ``lr``).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        kappa: str | Kappa = "sign",
        maximize: bool = False,
        foreach: bool | None = None,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        validate_hyperparameters(lr, betas, weight_decay)
        _check_state_dtype(state_dtype)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "weight_decay": weight_decay,
            "kappa": _kappa_entry(kappa),
            "maximize": bool(maximize),
            "foreach": foreach,
            "state_dtype": state_dtype,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (validating every option it overrides)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            validate_hyperparameters(group["lr"], group["betas"], group["weight_decay"])
            _check_state_dtype(group["state_dtype"])
            group["kappa"] = _kappa_entry(group["kappa"])
        except (ValueError, TypeError) as exc:
            self.param_groups.pop()
            raise type(exc)(f"param group {len(self.param_groups)}: {exc}") from None
        group["betas"] = tuple(group["betas"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("kappa", "sign")
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("state_dtype", None)

    @staticmethod
    def _state_dtype_for(p: Tensor, group: dict[str, Any]) -> torch.dtype:
        want: torch.dtype | None = group["state_dtype"]
        return p.dtype if want is None else torch.promote_types(p.dtype, want)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load state, keeping momentum in each group's ``state_dtype``.

        ``torch.optim.Optimizer.load_state_dict`` casts floating state to the parameter's dtype,
        which would silently drop float32 momentum kept for bfloat16 parameters.
        """
        saved = state_dict.get("state", {})
        saved_ids = [pid for g in state_dict.get("param_groups", []) for pid in g["params"]]
        super().load_state_dict(state_dict)
        params = [(p, g) for g in self.param_groups for p in g["params"]]
        for pid, (p, group) in zip(saved_ids, params):
            entry = saved.get(pid)
            if entry is not None and isinstance(entry.get("exp_avg"), Tensor):
                want = self._state_dtype_for(p, group)
                self.state[p]["exp_avg"] = entry["exp_avg"].to(device=p.device, dtype=want)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one step; ``closure`` (re-evaluating the loss) is called once, with grad on."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            lr, betas, wd = group["lr"], group["betas"], group["weight_decay"]
            try:
                validate_hyperparameters(lr, betas, wd)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"param group {index}: {exc}") from None
            ps: list[Tensor] = []
            gs: list[Tensor] = []
            ms: list[Tensor] = []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise TypeError(
                        f"Lion does not support sparse gradients (param group {index}, parameter of "
                        f"shape {tuple(p.shape)} has a {g.layout} gradient)"
                    )
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(
                        p,
                        dtype=self._state_dtype_for(p, group),
                        memory_format=torch.preserve_format,
                    )
                m = state["exp_avg"]
                if p.is_complex():
                    p, g, m = torch.view_as_real(p), torch.view_as_real(g), torch.view_as_real(m)
                ps.append(p)
                gs.append(g)
                ms.append(m)
            if not ps:
                continue
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(type(p) in _PLAIN_TYPES for p in group["params"])
            apply_update(
                ps, gs, ms, float(lr), float(betas[0]), float(betas[1]), float(wd),
                get_kappa(group["kappa"]), bool(group["maximize"]), bool(foreach),
            )  # fmt: skip
        return loss


def constraint_violation(optimizer: Optimizer) -> list[float]:
    r"""Per parameter group, the largest constraint-function value over its parameters.

    For ``kappa="sign"`` (and the other box members) this is ``max λ|x|``; for ``"l2"`` it is
    ``max λ‖x‖₂`` over tensors, for ``"lp(p)"`` ``max λ‖x‖_q``; ``0`` for ``"identity"`` (no
    constraint) and for groups with ``weight_decay = 0``. A value ``≤ 1`` means every parameter
    of the group is feasible; Lion keeps it ``≤ 1`` once it is (up to rounding).

    Works with any optimizer whose groups have ``weight_decay`` (``kappa`` defaults to sign).
    """
    out: list[float] = []
    for group in optimizer.param_groups:
        lam = float(group.get("weight_decay", 0.0))
        k = get_kappa(group.get("kappa", "sign"))
        values = [float(k.constraint(p, lam)) for p in group["params"]]
        out.append(max(values, default=0.0))
    return out

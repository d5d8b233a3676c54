"""papershelf's shared optimizer conformance suite, run on Lion and on each Lion-𝒦 member."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from lion_opt import Lion

from papershelf.testing import ErrorInput, OptimizerSuite


class TestLionConformance(OptimizerSuite):
    optim_cls = Lion
    valid_inputs: ClassVar[list[dict[str, Any]]] = [
        {"lr": 1e-2},
        {"lr": 1e-2, "betas": (0.95, 0.98), "weight_decay": 0.5, "state_dtype": torch.float32},
        {"lr": 1e-2, "weight_decay": 0.5, "kappa": "l2"},
        {"lr": 1e-2, "weight_decay": 0.5, "kappa": "clip(0.5)"},
        {"lr": 1e-2, "weight_decay": 0.5, "kappa": "deadzone(0.1)"},
        {"lr": 1e-2, "weight_decay": 0.5, "kappa": "tanh(2.0)"},
        {"lr": 1e-2, "weight_decay": 0.5, "kappa": "lp(1.5)", "maximize": True},
    ]
    error_inputs: ClassVar[list[ErrorInput]] = [
        ErrorInput(
            {"lr": -1e-3}, ValueError, r"Invalid learning rate.*-0\.001", desc="negative lr"
        ),
        ErrorInput(
            {"betas": (1.0, 0.99)},
            ValueError,
            r"betas\[0\] must be in \[0, 1\), got 1\.0",
            desc="beta1=1",
        ),
        ErrorInput(
            {"betas": (0.9, -0.1)},
            ValueError,
            r"betas\[1\] must be in \[0, 1\), got -0\.1",
            desc="beta2<0",
        ),
        ErrorInput(
            {"weight_decay": -0.1}, ValueError, r"weight_decay.*>= 0, got -0\.1", desc="negative wd"
        ),
        ErrorInput(
            {"lr": 0.5, "weight_decay": 3.0},
            ValueError,
            r"lr \* weight_decay must be <= 1",
            desc="lr*wd>1",
        ),
        ErrorInput({"kappa": "sgn"}, ValueError, r"unknown kappa 'sgn'", desc="unknown kappa"),
        ErrorInput({"kappa": 3}, TypeError, r"kappa must be a string", desc="kappa type"),
        ErrorInput(
            {}, TypeError, r"sparse gradients", desc="sparse grad", on_step=True, sparse_grad=True
        ),
    ]
    convergence_inputs: ClassVar[dict[str, Any]] = {"lr": 1e-2}
    convergence_steps = 300

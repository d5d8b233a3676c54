# mypy: disable-error-code="no-untyped-call,index,call-overload,arg-type,misc,operator"
"""papershelf's OptimizerSuite for AdamP and SGDP."""

from __future__ import annotations

from typing import Any, ClassVar

from adamp_opt import SGDP, AdamP

from papershelf.testing import ErrorInput, OptimizerSuite

_COMMON_ERRORS = [
    ErrorInput({"eps": -1e-8}, ValueError, r"Invalid eps: eps must be >= 0.0, got -1e-08"),
    ErrorInput({"delta": 0.0}, ValueError, r"Invalid delta: delta must be > 0, got 0.0"),
    ErrorInput(
        {"wd_ratio": 1.5}, ValueError, r"Invalid wd_ratio: wd_ratio must be in \[0, 1\], got 1.5"
    ),
    ErrorInput(
        {"weight_decay": -0.1},
        ValueError,
        r"Invalid weight_decay: weight_decay must be >= 0.0, got -0.1",
    ),
    ErrorInput(
        {"projection": "radial"}, ValueError, r"Invalid projection: must be one of .*got 'radial'"
    ),
    ErrorInput(
        {"channel_dim": -1}, ValueError, r"Invalid channel_dim: must be a non-negative int, got -1"
    ),
    ErrorInput({"nesterov": "yes"}, TypeError, r"nesterov must be a bool, got 'yes'"),
    ErrorInput({"maximize": 1}, TypeError, r"maximize must be a bool, got 1"),
    ErrorInput({"foreach": "auto"}, TypeError, r"foreach must be a bool or None, got 'auto'"),
    ErrorInput({"delta": "0.1"}, TypeError, r"delta must be a real number, got '0.1' of type str"),
    ErrorInput(
        {},
        TypeError,
        r"does not support sparse gradients \(parameter 0 of group 0",
        "sparse-grad",
        on_step=True,
        sparse_grad=True,
    ),
]


class TestAdamPConformance(OptimizerSuite):
    optim_cls = AdamP
    valid_inputs: ClassVar[list[dict[str, Any]]] = [
        {},
        {"lr": 1e-2, "nesterov": True, "weight_decay": 1e-2, "wd_ratio": 0.5},
        {"lr": 1e-2, "projection": "channel", "weight_decay": 0.1, "channel_dim": 1},
        {"lr": 1e-2, "projection": "layer", "delta": 0.5},
    ]
    error_inputs: ClassVar[list[ErrorInput]] = [
        ErrorInput({"lr": -1e-3}, ValueError, r"Invalid lr: lr must be >= 0.0, got -0.001"),
        ErrorInput({"lr": float("nan")}, ValueError, r"lr must be finite, got nan"),
        ErrorInput(
            {"betas": (1.0, 0.999)},
            ValueError,
            r"Invalid beta parameter at index 0: must be in \[0, 1\), got 1.0",
        ),
        ErrorInput(
            {"betas": (0.9, -0.1)},
            ValueError,
            r"Invalid beta parameter at index 1: must be in \[0, 1\), got -0.1",
        ),
        ErrorInput({"betas": 0.9}, TypeError, r"betas must be a pair \(beta1, beta2\), got 0.9"),
        ErrorInput(
            {"lr": 1.0, "weight_decay": 2.0},
            ValueError,
            r"decoupled decay factor 1 - 2 is negative \(lr=1.0, weight_decay=2.0\)",
        ),
        *_COMMON_ERRORS,
    ]
    convergence_inputs: ClassVar[dict[str, Any]] = {"lr": 0.05}


class TestSGDPConformance(OptimizerSuite):
    optim_cls = SGDP
    valid_inputs: ClassVar[list[dict[str, Any]]] = [
        {"lr": 1e-2},
        {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-2},
        {
            "lr": 1e-2,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 1e-2,
            "projection": "layer",
        },
        {"lr": 1e-2, "momentum": 0.5, "dampening": 0.5, "projection": "channel"},
    ]
    error_inputs: ClassVar[list[ErrorInput]] = [
        ErrorInput({"lr": -0.1}, ValueError, r"Invalid lr: lr must be >= 0.0, got -0.1"),
        ErrorInput(
            {"lr": 0.1, "momentum": 1.0},
            ValueError,
            r"Invalid momentum: must be in \[0, 1\), got 1.0",
        ),
        ErrorInput(
            {"lr": 0.1, "dampening": 2.0},
            ValueError,
            r"Invalid dampening: must be in \[0, 1\], got 2.0",
        ),
        ErrorInput(
            {"lr": 0.5, "momentum": 0.9, "weight_decay": 1.0},
            ValueError,
            r"decoupled decay factor 1 - 5 is negative",
        ),
        *[
            ErrorInput({"lr": 0.1, **e.kwargs}, e.error, e.match, e.desc, e.on_step, e.sparse_grad)
            for e in _COMMON_ERRORS
        ],
    ]
    convergence_inputs: ClassVar[dict[str, Any]] = {"lr": 0.02, "momentum": 0.9}

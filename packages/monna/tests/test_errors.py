"""Every bad input raises ValueError/TypeError naming the argument and the value."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from monna import (
    ALIE,
    DistributedMoNNA,
    GeometricMedian,
    LabelFlipping,
    Mimic,
    MoNNAConfig,
    SelfCentredClipping,
    Simulator,
    blobs_problem,
    dirichlet_split_official,
    get_aggregator,
    get_attack,
    nna,
    nna_numpy,
    nna_torch,
)
from monna.aggregators import Average
from monna.attacks import AttackContext
from monna.functional import line_maximize


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n": 6, "f": 2}, ValueError, r"n=6 and f=2 violate n >= 3f \+ 1 = 7"),
        ({"n": 5, "f": -1}, ValueError, "f must be non-negative, got f=-1"),
        ({"n": 0, "f": 0}, ValueError, "n must be positive, got n=0"),
        ({"n": 4.0, "f": 1}, TypeError, "n must be an int, got float 4.0"),
        ({"n": 4, "f": 1, "beta": 1.0}, ValueError, r"beta must be in \[0, 1\), got 1.0"),
        ({"n": 4, "f": 1, "lr": 0.0}, ValueError, "lr must be a positive finite number, got 0.0"),
        ({"n": 4, "f": 1, "lr": float("nan")}, ValueError, "lr must be a positive finite number"),
        ({"n": 4, "f": 1, "batch_size": 0}, ValueError, "batch_size must be positive, got 0"),
        ({"n": 4, "f": 1, "l2": -1.0}, ValueError, "l2 must be non-negative, got -1.0"),
        (
            {"n": 4, "f": 1, "aggregator": "mean"},
            ValueError,
            "aggregator must be one of .* got 'mean'",
        ),
        ({"n": 4, "f": 1, "attack": "gauss"}, ValueError, "attack must be one of .* got 'gauss'"),
        ({"n": 4, "f": 1, "seed": -3}, ValueError, "seed must be non-negative, got -3"),
    ],
)
def test_config_errors(kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        MoNNAConfig(**kwargs)


def test_nna_errors() -> None:
    v = np.zeros((5, 3))
    with pytest.raises(ValueError, match="f=3 is too large for 5 received vectors"):
        nna_numpy(v, 3, 0)
    with pytest.raises(ValueError, match="f must be non-negative, got f=-1"):
        nna_torch(torch.zeros(5, 3), -1, 0)
    with pytest.raises(TypeError, match=r"f must be an int, got float 1.0"):
        nna_numpy(v, 1.0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"pivot must be in \[0, 5\), got pivot=5"):
        nna_numpy(v, 1, 5)
    with pytest.raises(TypeError, match="pivot must be an int index"):
        nna_torch(torch.zeros(5, 3), 1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"vectors must have shape \(m, d\) with m >= 1, got shape \(5,\)"
    ):
        nna_numpy(np.zeros(5), 1, 0)
    with pytest.raises(ValueError, match="vectors must have shape"):
        nna_torch(torch.zeros(2, 2, 2, 2), 0, 0)
    with pytest.raises(
        TypeError, match=r"vectors must be a numpy array or a torch.Tensor, got str"
    ):
        nna("abc", 0, 0)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="pivot as a tensor must be int64 of shape"):
        nna_torch(torch.zeros(2, 5, 3), 1, torch.tensor([0]))


def test_aggregator_and_attack_errors() -> None:
    with pytest.raises(ValueError, match=r"nu must be positive, got 0.0"):
        GeometricMedian(nu=0.0)
    with pytest.raises(ValueError, match="tau must be positive, got -1"):
        SelfCentredClipping(tau=-1)
    with pytest.raises(ValueError, match="iters must be a positive int, got 0"):
        SelfCentredClipping(iters=0)
    with pytest.raises(TypeError, match=r"vectors must be a torch.Tensor, got ndarray"):
        Average()(np.zeros((3, 2)), 0, 0)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"keyword arguments \['tau'\] given with an Aggregator instance"
    ):
        get_aggregator(Average(), tau=1.0)
    with pytest.raises(ValueError, match="tau must be a finite number or None"):
        ALIE(tau=float("inf"))
    with pytest.raises(ValueError, match="evals must be a positive int, got 0"):
        ALIE(evals=0)
    with pytest.raises(ValueError, match="target must be a non-negative int, got -1"):
        Mimic(-1)
    with pytest.raises(ValueError, match="target=9 but there are only 3 honest nodes"):
        Mimic(9)(torch.zeros(3, 2), 1, Average(), AttackContext(lr=0.1))
    with pytest.raises(ValueError, match=r"LabelFlipping needs context.flipped_grads"):
        LabelFlipping()(torch.zeros(3, 2), 1, Average(), AttackContext(lr=0.1))
    with pytest.raises(ValueError, match=r"honest must be a \(H, d\) tensor"):
        ALIE(tau=1.0)(torch.zeros(3), 1, Average(), AttackContext(lr=0.1))
    with pytest.raises(TypeError, match="given without an attack"):
        get_attack(None, tau=1.0)
    with pytest.raises(ValueError, match="evals must be a positive int, got 0"):
        line_maximize(lambda x: x, evals=0)
    with pytest.raises(ValueError, match=r"ratio must be in \(0.5, 1\), got 0.3"):
        line_maximize(lambda x: x, ratio=0.3)


def test_data_errors() -> None:
    prob = blobs_problem(3, seed=0)
    cfg = MoNNAConfig(n=4, f=1)
    with pytest.raises(
        ValueError, match=r"shards must hold one index array per honest node \(3\), got 2"
    ):
        Simulator(prob.model, prob.X, prob.y, prob.shards[:2], cfg)
    bad = [prob.shards[0], prob.shards[1], np.array([10**6])]
    with pytest.raises(ValueError, match=r"shards\[2\] indexes outside"):
        Simulator(prob.model, prob.X, prob.y, bad, cfg)
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        Simulator(prob.model, prob.X, prob.y.float(), prob.shards, cfg)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got str"):
        Simulator("mlp", prob.X, prob.y, prob.shards, cfg)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a MoNNAConfig, got dict"):
        Simulator(prob.model, prob.X, prob.y, prob.shards, {"n": 4})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be a non-negative int, got -1"):
        Simulator(prob.model, prob.X, prob.y, prob.shards, cfg).run(-1)
    with pytest.raises(ValueError, match="alpha must be positive, got 0"):
        dirichlet_split_official(np.arange(10) % 2, 2, alpha=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_distributed_refuses_a_world_size_that_does_not_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prob = blobs_problem(4, seed=0)
    with pytest.raises(RuntimeError, match=r"torch.distributed is not initialised"):
        DistributedMoNNA(prob.model, prob.X, prob.y, prob.shards, MoNNAConfig(n=5, f=1))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    store = dist.TCPStore(  # type: ignore[attr-defined]
        "127.0.0.1", _free_port(), 1, is_master=True
    )
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        with pytest.raises(
            ValueError, match=r"world size 1 does not match the n - f = 5 - 1 = 4 honest nodes"
        ):
            DistributedMoNNA(prob.model, prob.X, prob.y, prob.shards, MoNNAConfig(n=5, f=1))
    finally:
        dist.destroy_process_group()

"""Parity with byzfl (EPFL's library) and with a port of the official peer-to-peer loop."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch
from monna import ALIE, FOE, NNA, Mimic, MoNNAConfig, SignFlipping, Simulator, blobs_problem
from monna.aggregators import (
    Average,
    GeometricMedian,
    Krum,
    Median,
    SelfCentredClipping,
    TrimmedMean,
)
from monna.attacks import AttackContext
from monna.core import comm_seed, node_seed, sample_received
from monna.functional import line_maximize, nna_torch


def _load_byzfl() -> types.SimpleNamespace:
    """byzfl's aggregators and attacks, without its package ``__init__``.

    ``byzfl/__init__`` also imports its federated-learning simulator, which imports torchvision;
    the PyPI torchvision wheel is built for CUDA torch and fails to load against a CPU torch
    ("operator torchvision::nms does not exist"). The numeric modules need only numpy and torch.
    """
    spec = importlib.util.find_spec("byzfl")
    assert spec is not None and spec.submodule_search_locations, "byzfl is in the test group"
    if "byzfl" not in sys.modules:
        pkg = types.ModuleType("byzfl")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["byzfl"] = pkg
    aggs = importlib.import_module("byzfl.aggregators")
    atts = importlib.import_module("byzfl.attacks")
    names = {k: v for mod in (aggs, atts) for k, v in vars(mod).items() if k[:1].isupper()}
    return types.SimpleNamespace(**names)


byzfl = _load_byzfl()


@pytest.fixture
def vectors(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((11, 20))


@pytest.mark.parametrize("idx", [0, 4, 10])
def test_nna_equals_byzfl_monna(vectors: np.ndarray, idx: int) -> None:
    # byzfl averages n - f of n inputs with argpartition: equal when distances are distinct
    ours = NNA()(torch.from_numpy(vectors), 3, idx).numpy()
    np.testing.assert_allclose(ours, byzfl.MoNNA(f=3, idx=idx)(vectors), atol=1e-12)


def test_baseline_aggregators_equal_byzfl(vectors: np.ndarray) -> None:
    t = torch.from_numpy(vectors)
    np.testing.assert_allclose(Average()(t, 3, 0).numpy(), byzfl.Average()(vectors), atol=1e-12)
    np.testing.assert_allclose(
        TrimmedMean()(t, 3, 0).numpy(), byzfl.TrMean(f=3)(vectors), atol=1e-12
    )
    np.testing.assert_allclose(Median()(t, 3, 0).numpy(), byzfl.Median()(vectors), atol=1e-12)
    np.testing.assert_allclose(Krum()(t, 3, 0).numpy(), byzfl.Krum(f=3)(vectors), atol=1e-12)
    np.testing.assert_allclose(
        GeometricMedian(nu=0.1, iters=3)(t, 3, 0).numpy(),
        byzfl.GeometricMedian(nu=0.1, T=3)(vectors),
        atol=1e-10,
    )
    cc = byzfl.CenteredClipping(L=3, tau=2.0)
    cc.m = vectors[6].copy()  # byzfl's constructor rejects every `m` (its type check is inverted)
    with np.errstate(divide="ignore"):  # byzfl divides by the zero distance of the centre itself
        ref = cc(vectors)
    np.testing.assert_allclose(
        SelfCentredClipping(tau=2.0, iters=3)(t, 3, 6).numpy(), ref, atol=1e-10
    )


def test_attacks_equal_byzfl(vectors: np.ndarray) -> None:
    h = torch.from_numpy(vectors)
    ctx = AttackContext(lr=0.1)
    agg = Average()
    np.testing.assert_allclose(
        SignFlipping()(h, 3, agg, ctx).numpy(), byzfl.SignFlipping()(vectors), atol=1e-12
    )
    np.testing.assert_allclose(
        ALIE(tau=1.5)(h, 3, agg, ctx).numpy(), byzfl.ALittleIsEnough(tau=1.5)(vectors), atol=1e-12
    )
    # official FOE: mean - tau * mean; byzfl IPM: -tau' * mean, so tau = 1 + tau'
    np.testing.assert_allclose(
        FOE(tau=3.0)(h, 3, agg, ctx).numpy(),
        byzfl.InnerProductManipulation(tau=2.0)(vectors),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        Mimic(2)(h, 3, agg, ctx).numpy(), byzfl.Mimic(epsilon=2)(vectors), atol=0
    )


# --------------------------------------------------------------------------------------------
# A port of the official loop (peerToPeer.py, momentum at the worker, "identical" attacks):
# plain lists, in-place momentum and half-steps, Python-sorted CVA, the official line search.
def _official_cva(grads: list[torch.Tensor], f: int, honest_index: int) -> torch.Tensor:
    pivot = grads[honest_index]
    scores = sorted(
        ((i, g.sub(pivot).norm().item()) for i, g in enumerate(grads)), key=lambda x: x[1]
    )
    return torch.stack([grads[scores[j][0]] for j in range(len(grads) - f)]).mean(dim=0)


def _official_little(honest: list[torch.Tensor], f: int) -> list[torch.Tensor]:
    stck = torch.stack(honest)
    avg = stck.mean(dim=0)
    att = stck.var(dim=0).sqrt_()

    def eval_factor(factor: float) -> float:
        attack = avg + factor * att
        outs = [_official_cva(honest + [attack] * f, f, i) for i in range(len(honest))]
        agg = torch.stack(outs).mean(dim=0).sub(avg)
        return agg.dot(agg).item()

    factor = line_maximize(eval_factor, evals=16)
    return [avg + factor * att] * f


def test_simulator_equals_a_port_of_the_official_loop() -> None:
    n, f, steps = 9, 2, 6
    H = n - f
    prob = blobs_problem(H, alpha=1.0, hidden=8, seed=3, dtype=torch.float64)
    cfg = MoNNAConfig(
        n=n,
        f=f,
        lr=0.3,
        beta=0.9,
        lr_decay=2.0,
        lr_decay_delta=2,
        batch_size=8,
        attack="alie",
        seed=5,
    )
    sim = Simulator(copy.deepcopy(prob.model), prob.X, prob.y, prob.shards, cfg).run(steps)

    # the port replays the same minibatch and received-set draws
    model = prob.model
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    numels = [p.numel() for p in model.parameters()]

    def grad_at(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        p = theta.detach().clone().requires_grad_(True)
        params = {k: t.view(s) for k, t, s in zip(names, torch.split(p, numels), shapes)}
        out = torch.func.functional_call(model, params, (prob.X[idx],))
        loss = torch.nn.functional.cross_entropy(out, prob.y[idx]) + cfg.l2 * p.norm()
        loss.backward()
        assert p.grad is not None
        return p.grad

    gens = [torch.Generator().manual_seed(node_seed(5, i)) for i in range(H)]
    comm = torch.Generator().manual_seed(comm_seed(5))
    theta0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    thetas = [theta0.clone() for _ in range(H)]  # clones: the step-0 aliasing is not reproduced
    moms = [torch.zeros_like(theta0) for _ in range(H)]
    lr = cfg.lr
    for t in range(steps):
        if t % 2 == 0:
            lr = cfg.lr / (t / 2.0 + 1)
        grads = []
        for j in range(H):
            shard = torch.as_tensor(prob.shards[j])
            idx = shard[torch.randperm(len(shard), generator=gens[j])[: min(8, len(shard))]]
            grads.append(grad_at(thetas[j], idx))
        for gm, g in zip(moms, grads):
            gm.mul_(cfg.beta).add_(g, alpha=1.0 - cfg.beta)
        for th, gm in zip(thetas, moms):
            th.add_(gm, alpha=-lr)
        byz = _official_little(thetas, f)
        recv = sample_received(comm, H, H - f - 1)
        new = []
        for j in range(H):
            correct = [thetas[k] for k in recv[j].tolist()] + [thetas[j]]
            new.append(_official_cva(correct + byz, f, len(correct) - 1))
        thetas = new
    torch.testing.assert_close(sim.params_, torch.stack(thetas), rtol=0, atol=1e-12)


def test_line_searched_alie_matches_the_official_attack(rng: np.random.Generator) -> None:
    honest = torch.from_numpy(rng.standard_normal((7, 12)))
    ours = ALIE()(honest, 2, NNA(), AttackContext(lr=0.1))
    torch.testing.assert_close(ours, _official_little(list(honest), 2)[0], rtol=0, atol=1e-12)
    assert nna_torch(torch.cat([honest, ours.expand(2, -1)]), 2, 0).isfinite().all()

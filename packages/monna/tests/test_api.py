"""The simulator: determinism, degenerate cases, evaluation helpers and the robustness property."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from monna import (
    MoNNAConfig,
    NonFinite,
    Problem,
    Simulator,
    blobs_problem,
    dirichlet_split,
    dirichlet_split_official,
)


def _sim(prob: Problem, **kw: Any) -> Simulator:
    cfg = MoNNAConfig(
        **{"n": 13, "f": 3, "lr": 0.5, "beta": 0.9, "lr_decay": 0.0, "batch_size": 16, **kw}
    )
    return Simulator(copy.deepcopy(prob.model), prob.X, prob.y, prob.shards, cfg)


@pytest.fixture(scope="module")
def prob() -> Problem:
    return blobs_problem(10, alpha=0.5, hidden=16, seed=1)


def test_same_seed_same_trajectory_and_seed_matters(prob: Problem) -> None:
    a = _sim(prob, attack="alie", seed=3).run(8)
    b = _sim(prob, attack="alie", seed=3).run(8)
    c = _sim(prob, attack="alie", seed=4).run(8)
    assert torch.equal(a.params_, b.params_)
    assert not torch.equal(a.params_, c.params_)
    assert [h["tau"] for h in a.history_] == [h["tau"] for h in b.history_]
    assert all(h["tau"] is not None and h["tau"] >= 0 for h in a.history_)


def test_nna_with_f_zero_is_plain_averaging(prob: Problem) -> None:
    a = _sim(prob, n=10, f=0, aggregator="nna").run(5)
    b = _sim(prob, n=10, f=0, aggregator="average").run(5)
    torch.testing.assert_close(a.params_, b.params_)
    assert a.disagreement() < 1e-5  # every node averages the same full set


def test_evaluation_helpers(prob: Problem) -> None:
    sim = _sim(prob).run(3)
    p = sim.predict_proba(prob.X_test)
    assert p.shape == (10, len(prob.y_test), 4)
    torch.testing.assert_close(p.sum(-1), torch.ones(10, len(prob.y_test)))
    acc = sim.accuracy(prob.X_test, prob.y_test)
    assert acc.shape == (10,) and ((acc >= 0) & (acc <= 1)).all()
    m = sim.honest_model(2)
    torch.testing.assert_close(m(prob.X_test), sim.logits(prob.X_test)[2])
    assert sim.step_ == 3 and len(sim.history_) == 3
    with pytest.raises(ValueError, match=r"i must be in \[0, 10\), got 10"):
        sim.honest_model(10)


def test_non_finite_byzantine_vectors_are_filtered_by_nna_but_poison_averaging(
    prob: Problem,
) -> None:
    robust = _sim(prob, attack=NonFinite()).run(5)
    assert torch.isfinite(robust.params_).all()
    naive = _sim(prob, attack=NonFinite(), aggregator="average").run(2)
    assert not torch.isfinite(naive.params_).all()


def test_label_flipping_and_mimic_run(prob: Problem) -> None:
    for attack in ("label_flipping", "mimic", "sign_flipping"):
        assert torch.isfinite(_sim(prob, attack=attack).run(3).params_).all()


def test_official_split_may_share_samples_and_papershelf_split_partitions() -> None:
    y = np.repeat(np.arange(4), 50)
    off = dirichlet_split_official(y, 5, alpha=1.0, seed=0)
    assert all(len(s) <= 40 and len(np.unique(s)) == len(s) for s in off)
    assert len(np.concatenate(off)) != len(np.unique(np.concatenate(off)))  # overlaps exist
    ours = dirichlet_split(y, 5, alpha=1.0, seed=0)
    assert np.array_equal(np.sort(np.concatenate(ours)), np.arange(200))


@pytest.mark.parametrize("attack", ["foe", "alie"])
def test_monna_keeps_accuracy_where_averaging_collapses(prob: Problem, attack: str) -> None:
    clean = _sim(prob, aggregator="average").run(60).accuracy(prob.X_test, prob.y_test).mean()
    monna = _sim(prob, attack=attack).run(60).accuracy(prob.X_test, prob.y_test)
    avg = _sim(prob, attack=attack, aggregator="average").run(60).accuracy(prob.X_test, prob.y_test)
    assert clean > 0.8
    assert monna.min() > clean - 0.08, (monna, clean)
    assert avg.mean() < clean - 0.3, (avg, clean)

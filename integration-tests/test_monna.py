"""monna + balance-score, the way a downstream project would use them.

Ten honest and three Byzantine nodes train a linear digits classifier with MoNNA in the
simulator while the Byzantine nodes run ALIE with the official line search; plain averaging
(D-SGD) runs under the same attack. The honest nodes' predicted probabilities are then scored on
a binary sub-task ("is the digit odd?") with balance_score: MoNNA's nodes must be accurate and
free of calibration bias, while the attacked averaging nodes are wrong *and* over-confident
(Balance well below zero). Balance at t = 0.5 must also equal accuracy minus mean confidence.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
monna = pytest.importorskip("monna")
bs = pytest.importorskip("balance_score")


def _odd_probability(sim: Any, X: Any) -> np.ndarray:
    """(H, N) P(odd digit) of every honest node."""
    proba = sim.predict_proba(X).double().numpy()
    out: np.ndarray = np.clip(proba[..., 1::2].sum(-1), 0.0, 1.0)
    return out


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[Any, Any]]:
    torch.set_num_threads(1)
    prob = monna.digits_problem(10, alpha=1.0, hidden=0, seed=0)
    out = {}
    for rule in ("nna", "average"):
        cfg = monna.MoNNAConfig(
            n=13, f=3, lr=0.5, beta=0.9, lr_decay=0.0, batch_size=16, aggregator=rule, attack="alie"
        )
        sim = monna.Simulator(copy.deepcopy(prob.model), prob.X, prob.y, prob.shards, cfg).run(60)
        out[rule] = (sim, prob)
    return out


def test_monna_nodes_are_accurate_and_unbiased_on_a_binary_subtask(
    runs: dict[str, tuple[Any, Any]],
) -> None:
    sim, prob = runs["nna"]
    y_odd = (prob.y_test.numpy() % 2).astype(int)
    q = _odd_probability(sim, prob.X_test)
    for node in range(q.shape[0]):
        bal = bs.balance_score(y_odd, q[node])
        acc = float(((q[node] >= 0.5) == y_odd).mean())
        conf = float(np.maximum(q[node], 1 - q[node]).mean())
        assert bal == pytest.approx(acc - conf, abs=1e-12)  # the identity at t = 0.5
        assert acc > 0.9
        assert abs(bal) < 0.1


def test_attacked_averaging_is_wrong_and_overconfident(runs: dict[str, tuple[Any, Any]]) -> None:
    sim, prob = runs["average"]
    y_odd = (prob.y_test.numpy() % 2).astype(int)
    assert torch.isfinite(sim.params_).all()
    q = _odd_probability(sim, prob.X_test)
    monna_bal = np.mean(
        [bs.balance_score(y_odd, qi) for qi in _odd_probability(runs["nna"][0], prob.X_test)]
    )
    bals = [bs.balance_score(y_odd, qi) for qi in q]
    assert max(bals) < -0.2
    assert max(bals) < monna_bal - 0.2

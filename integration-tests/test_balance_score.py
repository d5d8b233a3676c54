"""balance-score evaluating a torch model trained with lion-opt, the way a downstream project would.

A logistic-regression model and a small MLP are trained on breast_cancer with Lion; their
calibration is tracked with balance_score's streaming metrics over mini-batches, which must equal
the one-shot functional values; over-training the MLP (sharper, over-confident probabilities)
must drive Balance negative, and a temperature that softens the logits must push it back up.
"""

from __future__ import annotations

import balance_score as bs
import lion_opt
import numpy as np
import pytest
import torch

from papershelf.data import load_split


def _train(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float
) -> None:
    gen = torch.Generator().manual_seed(0)
    opt = lion_opt.Lion(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (64,), generator=gen)
        opt.zero_grad()
        loss = loss_fn(model(X[idx]).squeeze(1), y[idx].float())
        loss.backward()
        opt.step()


def _evaluate(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, temperature: float = 1.0
) -> dict[str, float]:
    """Streaming metrics over mini-batches of 17, checked against the one-shot functional values."""
    balance, ece, brier = bs.BalanceScore(), bs.CalibrationError(n_bins=10), bs.BrierScore()
    probs = []
    with torch.no_grad():
        for xb, yb in zip(X.split(17), y.split(17), strict=True):
            pb = torch.sigmoid(model(xb) / temperature)  # (batch, 1) tensors go in as they are
            for m in (balance, ece, brier):
                m.update(yb, pb)
            probs.append(pb.squeeze(1).double().numpy())
    q = np.concatenate(probs)
    y_np = y.numpy()
    assert balance.compute() == pytest.approx(bs.balance_score(y_np, q), abs=1e-12)
    assert ece.compute() == pytest.approx(bs.expected_calibration_error(y_np, q), abs=1e-12)
    assert brier.compute() == pytest.approx(bs.brier_score(y_np, q), abs=1e-12)
    assert (
        abs(balance.compute()) <= bs.expected_calibration_error(y_np, q, mode="top_label") + 1e-12
    )
    return {
        "balance": balance.compute(),
        "ece": ece.compute(),
        "brier": brier.compute(),
        "accuracy": float(np.mean((q >= 0.5) == y_np)),
    }


def test_lion_trained_models_evaluated_with_streaming_balance() -> None:
    torch.manual_seed(0)
    split = load_split("breast_cancer", as_torch=True)
    X_tr, y_tr = split.X_train, split.y_train
    X_te, y_te = torch.cat([split.X_val, split.X_test]), torch.cat([split.y_val, split.y_test])

    logreg = torch.nn.Linear(split.n_features, 1)
    _train(logreg, X_tr, y_tr, steps=300, lr=1e-3)
    lr_metrics = _evaluate(logreg, X_te, y_te)
    assert lr_metrics["accuracy"] > 0.9

    mlp = torch.nn.Sequential(
        torch.nn.Linear(split.n_features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )
    _train(mlp, X_tr, y_tr, steps=800, lr=3e-3)  # long training: near-0/1 probabilities
    sharp = _evaluate(mlp, X_te, y_te)
    assert sharp["accuracy"] > 0.9
    assert sharp["balance"] < -0.01  # over-confident: Balance negative

    # softening every logit into [-1, 1] keeps the accuracy but caps the confidence at 0.73:
    # under-confident, so Balance >= accuracy - 0.73 > 0
    with torch.no_grad():
        temperature = float(mlp(X_te).abs().max())
    soft = _evaluate(mlp, X_te, y_te, temperature=temperature)
    assert soft["accuracy"] == sharp["accuracy"]
    assert soft["balance"] > 0.1 > sharp["balance"]

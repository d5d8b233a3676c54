"""lvhba + lion-opt: LV-HBA's data hyper-cleaning weights, then a downstream logistic model
trained with Lion on the re-weighted noisy training set, as a downstream project would."""

from __future__ import annotations

import lion_opt
import numpy as np
import torch
from lvhba import LVHBA
from lvhba.examples.svm import load_svm_data, svm_problem


def _train_logistic(
    Z: np.ndarray, y: np.ndarray, weights: np.ndarray, steps: int = 300
) -> torch.nn.Linear:
    torch.manual_seed(0)
    model = torch.nn.Linear(Z.shape[1], 1).double()
    opt = lion_opt.Lion(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=1e-2)
    Zt, yt = torch.as_tensor(Z), torch.as_tensor((y > 0).astype(np.float64))
    wt = torch.as_tensor(weights / weights.mean())
    for _ in range(steps):
        opt.zero_grad()
        logits = model(Zt).squeeze(1)
        loss = (
            wt * torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="none")
        ).mean()
        loss.backward()
        opt.step()
    return model


def test_hyper_cleaning_weights_help_lion_trained_model() -> None:
    data = load_svm_data("digits", seed=0, n_train=120, corruption=0.3)
    inst = svm_problem(data)
    x0 = torch.zeros(data.n_train, dtype=torch.float64)
    sol = inst.oracle.solve(x0)
    lam0 = torch.as_tensor(sol.lam)
    res = LVHBA(alpha=1e-2, beta=1e-2, eta=1e-2, gamma1=10.0, gamma2=10.0).solve(
        inst.problem, x0, torch.as_tensor(sol.theta), max_iter=80, lam0=lam0, z0=lam0
    )
    weights = np.exp(res.x.numpy())
    # LV-HBA lowers the weights of flipped labels relative to clean ones
    assert weights[data.corrupted].mean() < weights[~data.corrupted].mean()
    # a downstream model trained with Lion on the re-weighted data fits the clean labels better
    Zv, yv = torch.as_tensor(data.Z_val), torch.as_tensor((data.y_val > 0).astype(np.float64))

    def val_loss(model: torch.nn.Linear) -> float:
        with torch.no_grad():
            return float(
                torch.nn.functional.binary_cross_entropy_with_logits(model(Zv).squeeze(1), yv)
            )

    weighted = val_loss(_train_logistic(data.Z_train, data.y_train, weights))
    uniform = val_loss(_train_logistic(data.Z_train, data.y_train, np.ones_like(weights)))
    assert weighted < uniform

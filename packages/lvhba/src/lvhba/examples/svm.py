"""Per-sample hyperparameter optimization of a constrained linear SVM (the official code's
"Linear SVM" and "Data Clean" experiments), on scikit-learn's bundled data.

Upper variable ``x = c ∈ R^N`` (log weight of each training sample); lower variable
``θ = (w, b, ξ) ∈ R^{d + 1 + N}``:

.. math::

    \\min_{c, (w, b, \\xi)}\\ F = \\frac{1}{N_\\text{val}} \\sum_{j}
        \\operatorname{LeakyReLU}\\Big(2\\sigma\\big(-5\\, y_j (w^\\top z_j + b) / \\|w\\|\\big) - 1\\Big)

    \\text{s.t.}\\ (w, b, \\xi) \\in \\arg\\min\\ \\tfrac12\\|w\\|^2 + \\tfrac12 \\sum_i e^{c_i} \\xi_i^2
    \\quad \\text{s.t.}\\quad 1 - \\xi_i - \\tilde y_i (w^\\top z_i + b) \\le 0 .

The upper objective is the official scripts' smoothed, scale-free validation error. Training
labels ``ỹ`` may be corrupted; samples whose weight ``e^{c_i}`` LV-HBA lowers are the suspected
corrupted ones (data hyper-cleaning). ``C`` is the polyhedron of the ``N`` margin constraints,
projected onto with a cvxpy QP each iteration, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lvhba.oracle import CvxpyLowerLevel, LowerLevelProgram
from lvhba.problem import BilevelProblem
from lvhba.sets import CvxpySet


@dataclass(frozen=True)
class SVMData:
    """Binary (±1) train/val/test data; ``corrupted`` marks flipped training labels."""

    Z_train: np.ndarray
    y_train: np.ndarray
    Z_val: np.ndarray
    y_val: np.ndarray
    Z_test: np.ndarray
    y_test: np.ndarray
    corrupted: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.y_train.size)

    @property
    def n_features(self) -> int:
        return int(self.Z_train.shape[1])


def load_svm_data(
    name: str = "breast_cancer",
    *,
    seed: int = 0,
    n_train: int | None = None,
    corruption: float = 0.0,
) -> SVMData:
    """A papershelf split as a ±1 problem (``digits``: digit ≥ 5 against < 5), optionally with
    the first ``n_train`` training rows only and a fraction ``corruption`` of training labels
    flipped (seeded)."""
    from papershelf.data import load_split
    from papershelf.devices import numpy_rng

    if name not in ("breast_cancer", "digits"):
        raise ValueError(f"name must be 'breast_cancer' or 'digits', got {name!r}")
    if not 0.0 <= corruption < 0.5:
        raise ValueError(f"corruption must be in [0, 0.5), got {corruption!r}")
    split = load_split(name, seed=seed)  # type: ignore[arg-type]

    def pm(y: np.ndarray) -> np.ndarray:
        pos = (y >= 5) if name == "digits" else (y == 1)
        return np.where(pos, 1.0, -1.0)

    Z, y = split.X_train, pm(split.y_train)
    if n_train is not None:
        if isinstance(n_train, bool) or not isinstance(n_train, int) or not 1 <= n_train <= y.size:
            raise ValueError(f"n_train must be an int in [1, {y.size}], got {n_train!r}")
        Z, y = Z[:n_train], y[:n_train]
    rng = numpy_rng(seed)
    flip = rng.random(y.size) < corruption
    y_noisy = np.where(flip, -y, y)
    return SVMData(Z, y_noisy, split.X_val, pm(split.y_val), split.X_test, pm(split.y_test), flip)


@dataclass(frozen=True)
class SVMInstance:
    """The bilevel problem, its oracle and the data, with helpers to read the variables."""

    problem: BilevelProblem
    oracle: CvxpyLowerLevel
    data: SVMData

    def unpack(self, theta: Tensor | np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """``(w, b, ξ)`` from a lower-level vector."""
        t = np.asarray(
            theta.detach().cpu().numpy() if isinstance(theta, Tensor) else theta, dtype=np.float64
        )
        d = self.data.n_features
        return t[:d], float(t[d]), t[d + 1 :]

    def accuracy(self, theta: Tensor | np.ndarray, split: str = "val") -> float:
        """Accuracy of the classifier ``sign(w·z + b)`` on ``split`` (``val`` or ``test``)."""
        w, b, _ = self.unpack(theta)
        Z, y = (
            (self.data.Z_val, self.data.y_val)
            if split == "val"
            else (self.data.Z_test, self.data.y_test)
        )
        return float(np.mean(np.sign(Z @ w + b) == y))

    def decision(self, theta: Tensor | np.ndarray, Z: np.ndarray) -> np.ndarray:
        w, b, _ = self.unpack(theta)
        return np.asarray(Z @ w + b)


def svm_problem(
    data: SVMData,
    *,
    log_weight_bounds: tuple[float, float] | None = (-5.0, 2.0),
    solver: str | None = None,
) -> SVMInstance:
    """The constrained SVM bilevel problem of the module docstring for ``data``.

    ``log_weight_bounds`` box-constrains ``c`` (part of the projection onto ``C``); it keeps
    the lower level's curvature ``e^{c_i}`` bounded so that a fixed ``eta`` stays stable. The
    official scripts leave ``c`` unbounded (it never moves there, see the README).
    """
    d, N = data.n_features, data.n_train
    if log_weight_bounds is not None:
        lo, hi = log_weight_bounds
        if not lo < hi:
            raise ValueError(
                f"log_weight_bounds must be (low, high) with low < high, got {log_weight_bounds!r}"
            )
    # g is divided by the spectral norm of its Jacobian in θ, as the toy's constraint is
    # normalised: the θ/λ descent-ascent is unstable when η‖∇_θ g‖² ≫ 1/γ2 (see README).
    jac = np.hstack([data.y_train[:, None] * data.Z_train, data.y_train[:, None], np.eye(N)])
    scale = 1.0 / float(np.linalg.norm(jac, 2))
    Zt = torch.as_tensor(data.Z_train, dtype=torch.float64)
    yt = torch.as_tensor(data.y_train, dtype=torch.float64)
    Zv = torch.as_tensor(data.Z_val, dtype=torch.float64)
    yv = torch.as_tensor(data.y_val, dtype=torch.float64)

    def F(x: Tensor, y: Tensor) -> Tensor:
        w, b = y[:d], y[d]
        margin = yv * (Zv @ w + b) / torch.linalg.vector_norm(w).clamp_min(1e-12)
        return torch.nn.functional.leaky_relu(2 * torch.sigmoid(-5.0 * margin) - 1).mean()

    def f(x: Tensor, theta: Tensor) -> Tensor:
        w, xi = theta[:d], theta[d + 1 :]
        return 0.5 * w @ w + 0.5 * torch.sum(torch.exp(x) * xi**2)

    def g(x: Tensor, theta: Tensor) -> Tensor:
        w, b, xi = theta[:d], theta[d], theta[d + 1 :]
        return (1.0 - xi - yt * (Zt @ w + b)) * scale

    def margins(c: Any, v: Any) -> list[Any]:
        from lvhba._cvx import cvxpy

        cp = cvxpy()

        out = [1.0 - v[d + 1 :] - cp.multiply(data.y_train, data.Z_train @ v[:d] + v[d]) <= 0]
        if log_weight_bounds is not None:
            out += [c >= log_weight_bounds[0], c <= log_weight_bounds[1]]
        return out

    def build(p: Any, th: Any) -> LowerLevelProgram:
        from lvhba._cvx import cvxpy

        cp = cvxpy()

        w, b, xi = th[:d], th[d], th[d + 1 :]
        obj = 0.5 * cp.sum_squares(w) + 0.5 * cp.sum(cp.multiply(p, cp.square(xi)))
        return LowerLevelProgram(
            objective=obj, g=(1.0 - xi - cp.multiply(data.y_train, data.Z_train @ w + b)) * scale
        )

    project = CvxpySet(N, d + 1 + N, margins, solver=solver)
    problem = BilevelProblem(F=F, f=f, g=g, project_xy=project)
    oracle = CvxpyLowerLevel(N, d + 1 + N, build, param_map=np.exp, nonneg=True, solver=solver)
    return SVMInstance(problem, oracle, data)


def grid_search(
    instance: SVMInstance, log_c_grid: np.ndarray
) -> tuple[float, np.ndarray, list[float]]:
    """Grid search over one shared log weight ``c`` (all samples equal): returns the best
    ``c`` by validation accuracy (ties: lower upper objective), its lower-level solution, and
    the validation accuracy of each grid value."""
    grid = np.asarray(log_c_grid, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError(f"log_c_grid must be a non-empty finite array, got {log_c_grid!r}")
    best: tuple[float, float, float, np.ndarray] = (np.nan, -np.inf, np.inf, np.zeros(0))
    accs = []
    for c in grid:
        sol = instance.oracle.solve(np.full(instance.data.n_train, c))
        acc = instance.accuracy(sol.theta, "val")
        accs.append(acc)
        theta = torch.as_tensor(sol.theta)
        F_val = float(instance.problem.F(torch.zeros(1, dtype=torch.float64), theta))
        key = (acc, -F_val)
        if key > (best[1], -best[2]):
            best = (float(c), acc, F_val, sol.theta)
    return best[0], best[3], accs


__all__ = ["SVMData", "SVMInstance", "grid_search", "load_svm_data", "svm_problem"]

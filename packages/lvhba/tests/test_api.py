"""Baselines, the step-at-a-time interface, the examples and the README."""

from __future__ import annotations

from pathlib import Path

import lvhba
import numpy as np
import torch
from lvhba import LVHBA, ImplicitGradient, ValueFunctionPenalty
from lvhba.examples.svm import grid_search, load_svm_data, svm_problem
from lvhba.examples.toy import normalized_toy, toy_start

from papershelf.testing import run_readme_blocks


def test_public_api_is_exported() -> None:
    for name in lvhba.__all__:
        assert getattr(lvhba, name) is not None
    assert set(lvhba.__all__) - {"__version__"} <= set(dir(lvhba))


def test_implicit_gradient_baseline_reaches_solution() -> None:
    inst = normalized_toy(8)
    res = ImplicitGradient(lr=0.1).solve(
        inst.problem, inst.oracle, torch.zeros(8, dtype=torch.float64), max_iter=20
    )
    assert inst.relative_error(res.x) < 2e-2
    assert res.history.F[-1] < res.history.F[0]
    assert inst.problem.violation(res.x, res.y) < 1e-6


def test_value_function_penalty_baseline_decreases_error() -> None:
    inst = normalized_toy(5)
    x0, y0 = toy_start(5)
    res = ValueFunctionPenalty(alpha=0.02).solve(inst.problem, inst.oracle, x0, y0, max_iter=40)
    assert inst.relative_error(res.x) < 0.9 * inst.relative_error(x0)
    assert min(res.history.gap) > -1e-6  # exact value function: f(x, y) - v(x) >= 0 on C


def test_step_interface_equals_solve() -> None:
    inst = normalized_toy(4)
    x0, y0 = toy_start(4)
    solver = LVHBA()
    state = solver.init(inst.problem, x0, y0)
    for _ in range(25):
        state, _ = solver.step(inst.problem, state)
    res = solver.solve(inst.problem, x0, y0, max_iter=25)
    assert torch.equal(state.x, res.x) and torch.equal(state.lam, res.lam)


def test_svm_example_runs_and_keeps_margins() -> None:
    data = load_svm_data("breast_cancer", n_train=40, seed=1)
    inst = svm_problem(data)
    _, theta, accs = grid_search(inst, np.array([-2.0, 0.0]))
    assert len(accs) == 2 and 0.5 < inst.accuracy(theta, "test") <= 1.0
    x0 = torch.zeros(40, dtype=torch.float64)
    sol = inst.oracle.solve(x0)
    res = LVHBA(alpha=1e-2, eta=1e-2, beta=1e-2, gamma2=10.0).solve(
        inst.problem, x0, torch.as_tensor(sol.theta), max_iter=15, lam0=torch.as_tensor(sol.lam)
    )
    assert inst.problem.violation(res.x, res.y) < 1e-6  # (x, y) stays in C (cvxpy projection)
    assert float(res.x.min()) >= -5.0 - 1e-7 and float(res.x.max()) <= 2.0 + 1e-7


def test_hyper_cleaning_corruption_flags() -> None:
    data = load_svm_data("digits", n_train=100, corruption=0.3, seed=0)
    assert 0.15 < data.corrupted.mean() < 0.45
    clean = load_svm_data("digits", n_train=100, corruption=0.0, seed=0)
    assert np.array_equal(np.where(data.corrupted, -clean.y_train, clean.y_train), data.y_train)


def test_readme_blocks_run() -> None:
    run_readme_blocks(Path(__file__).parents[1] / "README.md")

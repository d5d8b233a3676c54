"""The conformance suites check real properties: they pass on torch/sklearn code and fail on broken code."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
import torch

from papershelf.testing import (
    ErrorInput,
    EstimatorSuite,
    MetricSuite,
    ModuleSuite,
    OptimizerSuite,
    assert_trajectory_close,
    run_readme_blocks,
)
from papershelf.testing.plugin import NetworkBlockedError


class TestSGDPassesOptimizerSuite(OptimizerSuite):
    optim_cls = torch.optim.SGD
    valid_inputs = [
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True},
    ]
    error_inputs = [
        ErrorInput({"lr": -1.0}, ValueError, "Invalid learning rate"),
        ErrorInput({"lr": 0.1, "momentum": -0.5}, ValueError, "Invalid momentum value"),
    ]
    convergence_inputs = {"lr": 0.05, "momentum": 0.9}


class _BrokenSGD(torch.optim.Optimizer):
    """Ignores maximize and per-group lr, and creates state for params without gradients."""

    def __init__(
        self, params: Any, lr: float = 0.01, maximize: bool = False, foreach: bool | None = None
    ) -> None:
        super().__init__(params, {"lr": lr, "maximize": maximize, "foreach": foreach})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["touched"] = True
                if p.grad is not None:
                    p.add_(p.grad, alpha=-0.01)
        return None


class _BrokenSuite(OptimizerSuite):
    optim_cls = _BrokenSGD
    valid_inputs = [{}]


@pytest.mark.parametrize(
    "test_name",
    [
        "test_maximize_equals_minimizing_the_negation",
        "test_param_groups_use_their_own_lr",
        "test_none_grad_params_untouched",
        "test_closure_is_called_once_and_returned",
    ],
)
def test_optimizer_suite_catches_a_broken_optimizer(test_name: str) -> None:
    with pytest.raises(AssertionError):
        getattr(_BrokenSuite(), test_name)({})


class TestLinearPassesModuleSuite(ModuleSuite):
    expected_shape = (4, 2)

    def make_module(self) -> Any:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())

    def make_inputs(self, dtype: Any, generator: Any) -> tuple[Any, ...]:
        return (torch.randn(4, 3, generator=generator, dtype=dtype),)


def test_module_suite_catches_a_wrong_gradient() -> None:
    class WrongGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x * x

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g  # should be 2 x g

    class Suite(TestLinearPassesModuleSuite):
        expected_shape = (4, 3)

        def make_module(self) -> Any:
            return WrongGrad.apply

    with pytest.raises(Exception, match="Jacobian mismatch"):
        Suite().test_gradcheck_float64()


def _mean_error(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y - p)))


def _mean_error_ref(y: np.ndarray, p: np.ndarray) -> float:
    return float(sum(abs(a - b) for a, b in zip(y.tolist(), p.tolist(), strict=True)) / len(y))


class _MeanError:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total, self.n = 0.0, 0

    def update(self, y: np.ndarray, p: np.ndarray) -> None:
        self.total += float(np.abs(y - p).sum())
        self.n += len(y)

    def compute(self) -> float:
        return self.total / self.n


class TestMeanErrorPassesMetricSuite(MetricSuite):
    functional = _mean_error
    reference = _mean_error_ref
    metric_cls = _MeanError

    def make_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        return rng.integers(0, 2, n).astype(float), rng.random(n)


def test_metric_suite_catches_batch_dependence() -> None:
    class LastBatchOnly(_MeanError):
        def update(self, y: np.ndarray, p: np.ndarray) -> None:
            self.reset()
            super().update(y, p)

    class Suite(TestMeanErrorPassesMetricSuite):
        metric_cls = LastBatchOnly

    with pytest.raises(AssertionError):
        Suite().test_batched_equals_one_shot()


sklearn = pytest.importorskip("sklearn")
from sklearn.dummy import DummyClassifier  # noqa: E402


class TestDummyPassesEstimatorSuite(EstimatorSuite):
    estimators = [DummyClassifier(strategy="prior")]


def test_trajectory_helper_reports_the_step() -> None:
    assert assert_trajectory_close(lambda i: np.full(3, i), lambda i: np.full(3, i), 5) == 5
    with pytest.raises(AssertionError, match="diverge at step 3"):
        assert_trajectory_close(
            lambda i: np.full(3, i), lambda i: np.full(3, i + (i >= 3) * 1e-6), 5
        )


def test_readme_blocks_run_in_order(tmp_path: Any) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# T\n\n```python\nx = 2\n```\n\ntext\n\n```python\nassert x == 2\ny = x + 1\n```\n"
    )
    assert len(run_readme_blocks(readme)) == 2
    readme.write_text("```python\nassert False, 'block ran'\n```\n")
    with pytest.raises(AssertionError, match="block ran"):
        run_readme_blocks(readme)


def test_network_is_blocked_but_loopback_works() -> None:
    with socket.socket() as s, pytest.raises(NetworkBlockedError, match=r"8\.8\.8\.8"):
        s.connect(("8.8.8.8", 53))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with server, socket.socket() as client:
        client.connect(server.getsockname())


def test_estimator_suite_marks_expected_failures_as_xfail() -> None:
    class Suite(EstimatorSuite):
        estimators = [DummyClassifier(strategy="prior")]
        expected_failed_checks = {"check_methods_subset_invariance": "declared to fail"}

    captured: dict[str, Any] = {}

    class FakeMetafunc:
        fixturenames = ("estimator", "sklearn_check")

        def parametrize(self, names: str, params: list[Any]) -> None:
            captured[names] = params

    Suite().pytest_generate_tests(FakeMetafunc())  # type: ignore[arg-type]
    params = captured["estimator,sklearn_check"]
    marked = {p.id: [m.name for m in p.marks] for p in params}
    assert marked["DummyClassifier-check_methods_subset_invariance"] == ["xfail"]
    assert sum(bool(m) for m in marked.values()) == 1

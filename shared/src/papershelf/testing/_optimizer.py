"""``OptimizerSuite``: conformance tests for ``torch.optim.Optimizer`` subclasses.

Modelled on PyTorch's ``common_optimizers.py`` (``OptimizerInfo`` with valid inputs and
``ErrorOptimizerInput`` rows carrying a message regex) and optax's shared contrib tests.

Usage::

    class TestLionConformance(OptimizerSuite):
        optim_cls = Lion
        valid_inputs = [{"lr": 1e-2}, {"lr": 1e-2, "weight_decay": 0.1}]
        error_inputs = [ErrorInput({"lr": -1.0}, ValueError, "Invalid learning rate")]
        convergence_inputs = {"lr": 0.05}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest


@dataclass(frozen=True)
class ErrorInput:
    """Constructor kwargs that must raise ``error`` with a message matching ``match``."""

    kwargs: dict[str, Any]
    error: type[Exception]
    match: str
    desc: str = ""
    on_step: bool = False  # the error is raised by step() (e.g. sparse gradients), not __init__
    sparse_grad: bool = False


@dataclass
class _Problem:
    params: list[Any]
    loss: Callable[[], Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _torch() -> Any:
    return pytest.importorskip("torch")


_SHAPES: tuple[tuple[int, ...], ...] = ((5, 3), (3,), (2, 2, 3), (1,))


def make_problem(
    dtype: Any = None, seed: int = 0, shapes: Sequence[tuple[int, ...]] = _SHAPES
) -> _Problem:
    """Parameters of several shapes and a smooth, non-separable loss over them."""
    torch = _torch()
    dtype = dtype or torch.float64
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
        for s in shapes
    ]
    targets = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    mats = [
        torch.randn(p.numel(), p.numel(), generator=gen, dtype=torch.float64) / p.numel() ** 0.5
        for p in params
    ]

    def loss() -> Any:
        total = torch.zeros((), dtype=torch.float64)
        for p, t, a in zip(params, targets, mats, strict=True):
            r = a @ (p.double().reshape(-1) - t.reshape(-1))
            total = total + 0.5 * (r * r).sum() + 0.1 * torch.sin(p.double()).sum()
        return total

    return _Problem(params, loss)


def _run(optim: Any, problem: _Problem, steps: int, *, closure: bool = False) -> list[Any]:
    for _ in range(steps):
        optim.zero_grad(set_to_none=True)

        def closure_fn() -> Any:
            optim.zero_grad(set_to_none=True)
            value = problem.loss()
            value.backward()
            return value

        if closure:
            optim.step(closure_fn)
        else:
            closure_fn()
            optim.step()
    return [p.detach().clone() for p in problem.params]


class OptimizerSuite:
    """Inherit and set ``optim_cls`` (and the other class attributes) to get the conformance tests."""

    optim_cls: ClassVar[Any] = None
    #: constructor kwargs (without params) that must work; each runs through every generic test.
    valid_inputs: ClassVar[list[dict[str, Any]]] = [{}]
    #: inputs that must fail, with the exception type and a message regex.
    error_inputs: ClassVar[list[ErrorInput]] = []
    #: kwargs under which the optimizer must reduce the test loss by ``convergence_factor``.
    convergence_inputs: ClassVar[dict[str, Any]] = {}
    convergence_steps: ClassVar[int] = 300
    convergence_factor: ClassVar[float] = 0.5
    supports_foreach: ClassVar[bool] = True
    supports_maximize: ClassVar[bool] = True
    #: low-precision dtypes whose parameters must keep their dtype through step().
    low_precision_dtypes: ClassVar[tuple[str, ...]] = ("float32", "bfloat16", "float16")
    steps: ClassVar[int] = 5

    def _make(self, params: Any, **kwargs: Any) -> Any:
        if self.optim_cls is None:
            pytest.fail("OptimizerSuite subclasses must set optim_cls")
        return self.optim_cls(params, **kwargs)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "valid_kwargs" in metafunc.fixturenames:
            ids = [
                ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
                for kw in self.valid_inputs
            ]
            metafunc.parametrize("valid_kwargs", self.valid_inputs, ids=ids)
        if "error_input" in metafunc.fixturenames:
            if not self.error_inputs:
                metafunc.parametrize(
                    "error_input",
                    [pytest.param(None, marks=pytest.mark.skip(reason="no error inputs declared"))],
                )
            else:
                ids = [
                    e.desc or ",".join(f"{k}={v}" for k, v in e.kwargs.items())
                    for e in self.error_inputs
                ]
                metafunc.parametrize("error_input", self.error_inputs, ids=ids)

    # --- generic behaviour -------------------------------------------------------------------
    def test_step_changes_params_and_lowers_loss(self, valid_kwargs: dict[str, Any]) -> None:
        torch = _torch()
        problem = make_problem()
        before = [p.detach().clone() for p in problem.params]
        start = float(problem.loss().detach())
        after = _run(self._make(problem.params, **valid_kwargs), problem, self.steps)
        assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)), (
            "step() changed nothing"
        )
        for p in after:
            assert torch.isfinite(p).all()
        end = float(problem.loss().detach())
        if valid_kwargs.get("maximize", False):
            assert end > start, (
                f"maximize: loss fell from {start:.6g} to {end:.6g} in {self.steps} steps"
            )
        else:
            assert end < start, f"loss rose from {start:.6g} to {end:.6g} in {self.steps} steps"

    def test_state_dict_round_trip(self, valid_kwargs: dict[str, Any]) -> None:
        torch = _torch()
        a = make_problem()
        opt_a = self._make(a.params, **valid_kwargs)
        _run(opt_a, a, self.steps)
        b = make_problem()
        with torch.no_grad():
            for pb, pa in zip(b.params, a.params, strict=True):
                pb.copy_(pa)
        opt_b = self._make(b.params, **valid_kwargs)
        opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
        out_a = _run(opt_a, a, self.steps)
        out_b = _run(opt_b, b, self.steps)
        for x, y in zip(out_a, out_b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)

    def test_foreach_matches_per_tensor(self, valid_kwargs: dict[str, Any]) -> None:
        if not self.supports_foreach:
            pytest.skip("optimizer declares no foreach implementation")
        torch = _torch()
        kw = {k: v for k, v in valid_kwargs.items() if k != "foreach"}
        a, b = make_problem(), make_problem()
        out_a = _run(self._make(a.params, foreach=False, **kw), a, self.steps)
        out_b = _run(self._make(b.params, foreach=True, **kw), b, self.steps)
        for x, y in zip(out_a, out_b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)

    def test_closure_is_called_once_and_returned(self, valid_kwargs: dict[str, Any]) -> None:
        problem = make_problem()
        opt = self._make(problem.params, **valid_kwargs)
        values: list[float] = []

        def closure() -> Any:
            opt.zero_grad()
            value = problem.loss()
            value.backward()
            values.append(float(value.detach()))
            return value

        returned = opt.step(closure)
        assert len(values) == 1, f"closure called {len(values)} times"
        assert returned is not None, "step(closure) must return the closure's loss"
        assert float(returned.detach() if hasattr(returned, "detach") else returned) == values[0]

    def test_none_grad_params_untouched(self, valid_kwargs: dict[str, Any]) -> None:
        torch = _torch()
        problem = make_problem()
        frozen = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
        before = frozen.detach().clone()
        opt = self._make([*problem.params, frozen], **valid_kwargs)
        _run(opt, problem, self.steps)
        assert frozen.grad is None
        torch.testing.assert_close(frozen.detach(), before, rtol=0, atol=0)
        assert len(opt.state.get(frozen, {})) == 0, (
            "state was created for a parameter without gradient"
        )

    def test_param_groups_use_their_own_lr(self, valid_kwargs: dict[str, Any]) -> None:
        torch = _torch()
        problem = make_problem()
        first, rest = problem.params[:1], problem.params[1:]
        before = first[0].detach().clone()
        before_rest = [p.detach().clone() for p in rest]
        kw = dict(valid_kwargs)
        opt = self._make([{"params": first, "lr": 0.0}, {"params": rest}], **kw)
        _run(opt, problem, self.steps)
        assert len(opt.param_groups) == 2
        torch.testing.assert_close(first[0].detach(), before, rtol=0, atol=0)
        assert any(
            not torch.equal(p.detach(), b) for p, b in zip(rest, before_rest, strict=True)
        ), "the group with the default lr did not move"

    def test_maximize_equals_minimizing_the_negation(self, valid_kwargs: dict[str, Any]) -> None:
        if not self.supports_maximize:
            pytest.skip("optimizer declares no maximize option")
        torch = _torch()
        a, b = make_problem(), make_problem()
        kw_a = {**valid_kwargs, "maximize": False} if "maximize" in valid_kwargs else valid_kwargs
        out_a = _run(self._make(a.params, **kw_a), a, self.steps)
        neg = _Problem(b.params, lambda: -b.loss())
        out_b = _run(self._make(b.params, **{**valid_kwargs, "maximize": True}), neg, self.steps)
        for x, y in zip(out_a, out_b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize("dtype_name", ["float32", "bfloat16", "float16"])
    def test_dtype_is_kept(self, valid_kwargs: dict[str, Any], dtype_name: str) -> None:
        if dtype_name not in self.low_precision_dtypes:
            pytest.skip(f"{dtype_name} not declared supported")
        torch = _torch()
        dtype = getattr(torch, dtype_name)
        problem = make_problem(dtype=dtype)
        opt = self._make(problem.params, **valid_kwargs)
        out = _run(opt, problem, self.steps)
        for p in out:
            assert p.dtype == dtype
            assert torch.isfinite(p.float()).all()

    def test_converges(self) -> None:
        problem = make_problem()
        start = float(problem.loss().detach())
        _run(self._make(problem.params, **self.convergence_inputs), problem, self.convergence_steps)
        end = float(problem.loss().detach())
        assert end < self.convergence_factor * start or end < start - abs(start) * (
            1 - self.convergence_factor
        ), f"loss went from {start:.4g} to {end:.4g} in {self.convergence_steps} steps"

    def test_error_inputs(self, error_input: ErrorInput) -> None:
        torch = _torch()
        if error_input.on_step:
            p = torch.zeros(3, 2, requires_grad=True)
            opt = self._make([p], **error_input.kwargs)
            if error_input.sparse_grad:
                p.grad = torch.sparse_coo_tensor([[0], [1]], [1.0], (3, 2), check_invariants=True)
            else:
                p.grad = torch.ones_like(p)
            with pytest.raises(error_input.error, match=error_input.match):
                opt.step()
        else:
            with pytest.raises(error_input.error, match=error_input.match):
                self._make([torch.zeros(2, requires_grad=True)], **error_input.kwargs)

    def test_error_messages_are_regexes(self) -> None:
        for e in self.error_inputs:
            re.compile(e.match)

"""``MetricSuite``: a metric's functional form, its class form and a reference agree.

Set ``functional`` (``f(*inputs) -> float``), ``reference`` (an independent implementation),
``metric_cls`` (with ``update(*inputs)``, ``compute()`` and ``reset()``) and implement
``make_inputs(rng, n)`` returning a tuple of arrays whose first axis is the sample axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np


class MetricSuite:
    functional: ClassVar[Callable[..., Any] | None] = None
    reference: ClassVar[Callable[..., Any] | None] = None
    metric_cls: ClassVar[Any] = None
    rtol: ClassVar[float] = 1e-10
    n_batches: ClassVar[int] = 7

    def make_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _unbound(self, attr: str) -> Callable[..., Any]:
        fn = getattr(self, attr)
        out: Callable[..., Any] = getattr(
            fn, "__func__", fn
        )  # a plain function on the class binds to self
        return out

    def test_functional_matches_reference(self) -> None:
        if self.reference is None:
            return
        rng = np.random.default_rng(0)
        for n in (1, 17, 1000):
            inputs = self.make_inputs(rng, n)
            np.testing.assert_allclose(
                self._unbound("functional")(*inputs),
                self._unbound("reference")(*inputs),
                rtol=self.rtol,
                atol=1e-12,
            )

    def test_class_equals_functional(self) -> None:
        if self.metric_cls is None:
            return
        rng = np.random.default_rng(1)
        inputs = self.make_inputs(rng, 500)
        metric = self.metric_cls()
        metric.update(*inputs)
        np.testing.assert_allclose(
            float(metric.compute()),
            float(self._unbound("functional")(*inputs)),
            rtol=self.rtol,
            atol=1e-12,
        )

    def test_batched_equals_one_shot(self) -> None:
        if self.metric_cls is None:
            return
        rng = np.random.default_rng(2)
        inputs = self.make_inputs(rng, 997)
        metric = self.metric_cls()
        cuts = np.sort(rng.choice(np.arange(1, 997), size=self.n_batches - 1, replace=False))
        for chunk in zip(*(np.split(x, cuts) for x in inputs), strict=True):
            metric.update(*chunk)
        one_shot = self.metric_cls()
        one_shot.update(*inputs)
        np.testing.assert_allclose(
            float(metric.compute()), float(one_shot.compute()), rtol=self.rtol, atol=1e-12
        )

    def test_reset_forgets(self) -> None:
        if self.metric_cls is None:
            return
        rng = np.random.default_rng(3)
        a, b = self.make_inputs(rng, 300), self.make_inputs(rng, 300)
        metric = self.metric_cls()
        metric.update(*a)
        metric.reset()
        metric.update(*b)
        fresh = self.metric_cls()
        fresh.update(*b)
        np.testing.assert_allclose(float(metric.compute()), float(fresh.compute()), rtol=0, atol=0)

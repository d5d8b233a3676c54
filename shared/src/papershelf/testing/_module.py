"""``ModuleSuite``: conformance tests for ``torch.nn.Module`` classes and loss functions.

Set ``make_module`` (returns a module) and ``make_inputs`` (returns a tuple of tensors for a
given dtype and generator); optionally ``expected_shape``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest


class ModuleSuite:
    """Inherit and implement :meth:`make_module` and :meth:`make_inputs`."""

    #: output shape for the inputs of :meth:`make_inputs`, or ``None`` to skip the check.
    expected_shape: ClassVar[tuple[int, ...] | None] = None
    #: run ``torch.autograd.gradcheck`` on float64 inputs.
    check_gradients: ClassVar[bool] = True

    def make_module(self) -> Any:
        raise NotImplementedError

    def make_inputs(self, dtype: Any, generator: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def _call(self, module: Any, inputs: tuple[Any, ...]) -> Any:
        return module(*inputs)

    def test_output_shape_and_finite(self) -> None:
        torch = pytest.importorskip("torch")
        module = self.make_module()
        out = self._call(module, self.make_inputs(torch.float32, torch.Generator().manual_seed(0)))
        if self.expected_shape is not None:
            assert tuple(out.shape) == tuple(self.expected_shape)
        assert torch.isfinite(out).all()

    def test_deterministic(self) -> None:
        torch = pytest.importorskip("torch")
        module = self.make_module()
        a = self._call(module, self.make_inputs(torch.float32, torch.Generator().manual_seed(0)))
        b = self._call(module, self.make_inputs(torch.float32, torch.Generator().manual_seed(0)))
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    def test_gradcheck_float64(self) -> None:
        if not self.check_gradients:
            pytest.skip("gradient check disabled for this module")
        torch = pytest.importorskip("torch")
        module = self.make_module()
        if isinstance(module, torch.nn.Module):
            module = module.double()
        inputs = tuple(
            x.detach().double().requires_grad_()
            if torch.is_tensor(x) and x.is_floating_point()
            else x
            for x in self.make_inputs(torch.float64, torch.Generator().manual_seed(0))
        )
        assert torch.autograd.gradcheck(
            lambda *xs: self._call(module, xs), inputs, eps=1e-6, atol=1e-5
        )

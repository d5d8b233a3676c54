"""Conformance suites and helpers that method packages reuse in their tests.

Subclass a suite in a package's tests and set a few class attributes; pytest collects the
inherited tests. The suites import torch and scikit-learn lazily, so a numpy-only package's tests
never need torch.

- :class:`OptimizerSuite` (modelled on PyTorch's ``OptimizerInfo``): valid and error inputs with
  message regexes, state_dict round trip, foreach equals per-tensor, dtype kept, closure, param
  groups, maximize, ``None`` gradients, convergence.
- :class:`ModuleSuite`: shapes, determinism and ``torch.autograd.gradcheck`` in float64.
- :class:`EstimatorSuite`: scikit-learn's estimator checks plus ``random_state`` determinism.
- :class:`MetricSuite`: functional equals a reference, class equals functional, batched equals
  one shot.
- :func:`assert_trajectory_close`: run two implementations side by side and compare every step.

The pytest plugin :mod:`papershelf.testing.plugin` blocks network access, pins BLAS/torch threads
to one and registers the ``gpu`` and ``slow`` markers.
"""

from __future__ import annotations

from papershelf.testing._estimator import EstimatorSuite
from papershelf.testing._metric import MetricSuite
from papershelf.testing._module import ModuleSuite
from papershelf.testing._optimizer import ErrorInput, OptimizerSuite
from papershelf.testing._trajectory import assert_trajectory_close, run_readme_blocks

__all__ = [
    "ErrorInput",
    "EstimatorSuite",
    "MetricSuite",
    "ModuleSuite",
    "OptimizerSuite",
    "assert_trajectory_close",
    "run_readme_blocks",
]

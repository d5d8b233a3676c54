from __future__ import annotations

import numpy as np
import pytest


def make_problem(
    rng: np.random.Generator, n: int, *, power: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from q**power: power > 1 makes q over-estimate P(y = 1)."""
    q = rng.beta(2.0, 2.0, n)
    y = (rng.random(n) < q**power).astype(np.int64)
    return y, q


@pytest.fixture
def problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return make_problem(rng, 2000, power=1.5)

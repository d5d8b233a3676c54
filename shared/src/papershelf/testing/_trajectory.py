"""Parity helpers: compare two implementations step by step, and run a README's code blocks."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _as_arrays(state: Any) -> list[np.ndarray]:
    items = state if isinstance(state, (list, tuple)) else [state]
    out = []
    for x in items:
        if hasattr(x, "detach"):
            x = x.detach().cpu().double().numpy()
        out.append(np.asarray(x, dtype=np.float64))
    return out


def assert_trajectory_close(
    step_a: Callable[[int], Any],
    step_b: Callable[[int], Any],
    n_steps: int,
    *,
    rtol: float = 0.0,
    atol: float = 1e-12,
) -> int:
    """Call ``step_a(i)`` and ``step_b(i)`` for ``i = 0..n_steps-1`` and compare their states.

    Each call advances its implementation by one step and returns its state (an array or tensor,
    or a sequence of them). The first step where the two differ beyond ``atol + rtol·|b|`` fails
    with the step number, the array index and the largest difference. Returns ``n_steps``.
    """
    for i in range(n_steps):
        a, b = _as_arrays(step_a(i)), _as_arrays(step_b(i))
        if len(a) != len(b):
            raise AssertionError(f"step {i}: implementations returned {len(a)} and {len(b)} arrays")
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            if x.shape != y.shape:
                raise AssertionError(f"step {i}, array {j}: shapes {x.shape} and {y.shape} differ")
            diff = np.abs(x - y)
            bound = atol + rtol * np.abs(y)
            if not np.all(diff <= bound):
                raise AssertionError(
                    f"trajectories diverge at step {i}, array {j}: max |a-b| = {diff.max():.3e} "
                    f"(atol={atol:g}, rtol={rtol:g})"
                )
    return n_steps


_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def run_readme_blocks(
    readme: str | Path, *, skip_marker: str = "# doctest: +SKIP"
) -> Sequence[str]:
    """Execute every ```python block of a README in order, in one shared namespace.

    Blocks whose first line contains ``skip_marker`` are not run. Returns the blocks that ran.
    """
    text = Path(readme).read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    ran: list[str] = []
    for block in _BLOCK.findall(text):
        if block.splitlines() and skip_marker in block.splitlines()[0]:
            continue
        exec(compile(block, f"{readme}:block{len(ran)}", "exec"), namespace)
        ran.append(block)
    if not ran:
        raise AssertionError(f"{readme} has no runnable ```python blocks")
    return ran

"""The README's ```python blocks run."""

from __future__ import annotations

from pathlib import Path

from papershelf.testing import run_readme_blocks


def test_readme_blocks_run() -> None:
    assert len(run_readme_blocks(Path(__file__).parents[1] / "README.md")) >= 2

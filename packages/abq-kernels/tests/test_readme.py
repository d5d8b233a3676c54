from __future__ import annotations

from pathlib import Path

from papershelf.testing import run_readme_blocks


def test_readme_blocks() -> None:
    run_readme_blocks(Path(__file__).parents[1] / "README.md")

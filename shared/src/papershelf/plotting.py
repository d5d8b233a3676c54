"""Plot helpers for demos: a headless matplotlib figure and an atomic PNG save."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from papershelf._optional import require


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``matplotlib.pyplot.subplots`` on the non-interactive Agg backend."""
    matplotlib = require("matplotlib", extra="plot")
    matplotlib.use("Agg", force=False)
    plt = require("matplotlib.pyplot", extra="plot")
    return plt.subplots(*args, **kwargs)  # type: ignore[no-any-return]


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically (temporary file, then rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        require("matplotlib.pyplot", extra="plot").close(fig)
    return path

"""Reliability-diagram plot (matplotlib is optional and imported only here, on first use)."""

from __future__ import annotations

from typing import Any

import numpy as np

from balance_score.calibration import ReliabilityDiagram


def plot_reliability_diagram(
    diagram: ReliabilityDiagram,
    *,
    ax: Any = None,
    label: str | None = None,
    show_histogram: bool = True,
) -> Any:
    """Draw a reliability diagram: observed frequency against mean score per bin, the diagonal,
    and (optionally) the share of samples per bin as bars along the bottom.

    Args:
        diagram: data from :func:`balance_score.reliability_diagram`.
        ax: a matplotlib ``Axes``; a new figure is made when ``None``.
        label: legend label of the curve.
        show_histogram: draw the per-bin sample share as grey bars (scaled to 25 % of the height).

    Returns:
        The ``Axes`` drawn on. Needs matplotlib (``pip install matplotlib``).
    """
    if not isinstance(diagram, ReliabilityDiagram):
        raise TypeError(f"diagram must be a ReliabilityDiagram, got {type(diagram).__name__}")
    from papershelf import require

    if ax is None:
        require("matplotlib", extra="plot").use("Agg", force=False)
        plt = require("matplotlib.pyplot", extra="plot")
        _, ax = plt.subplots(figsize=(4, 4))
    lo = 0.5 if diagram.mode == "top_label" else 0.0
    ax.plot([lo, 1], [lo, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    full = diagram.weight > 0
    ax.plot(diagram.mean_score[full], diagram.mean_outcome[full], marker="o", label=label)
    if show_histogram:
        share = diagram.weight / diagram.weight.sum()
        widths = np.diff(diagram.edges)
        ax.bar(
            diagram.edges[:-1],
            0.25 * share / max(float(share.max()), 1e-12),
            width=widths,
            align="edge",
            bottom=0.0,
            color="0.85",
            edgecolor="0.6",
            linewidth=0.5,
            zorder=0,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    what = "confidence" if diagram.mode == "top_label" else "predicted P(positive)"
    ax.set_xlabel(f"mean {what}")
    ax.set_ylabel("observed accuracy" if diagram.mode == "top_label" else "observed frequency")
    return ax


__all__ = ["plot_reliability_diagram"]

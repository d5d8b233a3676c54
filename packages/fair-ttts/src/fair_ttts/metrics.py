"""Group-fairness metrics for the favourable class (numpy only).

For groups :math:`g` of the sensitive feature, with :math:`\\hat y` the prediction and
:math:`+` the favourable label (``pos_label``):

.. math::

    SR_g = P(\\hat y = + \\mid g), \\quad TPR_g = P(\\hat y = + \\mid y = +, g), \\quad
    FPR_g = P(\\hat y = + \\mid y \\ne +, g)

- demographic parity difference :math:`\\max_g SR_g - \\min_g SR_g`, ratio :math:`\\min/\\max`
  (fairlearn's ``between_groups``);
- equal opportunity difference :math:`\\max_g TPR_g - \\min_g TPR_g`;
- equalized odds difference :math:`\\max(\\Delta TPR, \\Delta FPR)` (``agg="worst_case"``, fairlearn's
  default) or :math:`(\\Delta TPR + \\Delta FPR)/2` (``agg="mean"``, average odds);
- disparate impact :math:`SR_{unpriv} / SR_{priv}` and statistical parity difference
  :math:`SR_{unpriv} - SR_{priv}` (AIF360; the FairTTTS scripts' "SPD"), for a binary attribute.

Rates with an empty denominator are ``nan`` and are left out of the max/min.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GroupSummary:
    """Per-group counts and rates; ``rows()`` gives one dict per group for a table."""

    groups: np.ndarray
    count: np.ndarray
    selection_rate: np.ndarray
    true_positive_rate: np.ndarray
    false_positive_rate: np.ndarray
    accuracy: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "group": g.item() if hasattr(g, "item") else g,
                "count": int(n),
                "selection_rate": float(sr),
                "tpr": float(tpr),
                "fpr": float(fpr),
                "accuracy": float(acc),
            }
            for g, n, sr, tpr, fpr, acc in zip(
                self.groups,
                self.count,
                self.selection_rate,
                self.true_positive_rate,
                self.false_positive_rate,
                self.accuracy,
            )
        ]

    def __str__(self) -> str:
        head = f"{'group':>10} {'count':>7} {'sel.rate':>9} {'TPR':>7} {'FPR':>7} {'acc':>7}"
        lines = [head] + [
            f"{r['group']!s:>10} {r['count']:>7d} {r['selection_rate']:>9.4f} {r['tpr']:>7.4f} {r['fpr']:>7.4f} {r['accuracy']:>7.4f}"
            for r in self.rows()
        ]
        return "\n".join(lines)


def _inputs(
    y_true: Any, y_pred: Any, sensitive_features: Any, *, need_true: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    yp = np.asarray(y_pred)
    sf = np.asarray(sensitive_features)
    if yp.ndim != 1:
        raise ValueError(f"y_pred must be 1-D, got shape {yp.shape}")
    if yp.size == 0:
        raise ValueError("y_pred must not be empty")
    if sf.ndim != 1 or sf.shape[0] != yp.shape[0]:
        raise ValueError(
            f"sensitive_features must be 1-D with {yp.shape[0]} entries, got shape {sf.shape}"
        )
    yt: np.ndarray | None = None
    if y_true is None:
        if need_true:
            raise ValueError("y_true is required for this metric, got None")
    else:
        yt = np.asarray(y_true)
        if yt.shape != yp.shape:
            raise ValueError(f"y_true must have the shape of y_pred {yp.shape}, got {yt.shape}")
    return yt, yp, sf


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)
    return out


def group_summary(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, pos_label: Any = 1
) -> GroupSummary:
    """Counts, selection rate, TPR, FPR and accuracy for each group (groups sorted)."""
    yt, yp, sf = _inputs(y_true, y_pred, sensitive_features, need_true=False)
    groups, inv = np.unique(sf, return_inverse=True)
    k = groups.size
    pred_pos = (yp == pos_label).astype(np.float64)
    count = np.bincount(inv, minlength=k).astype(np.float64)
    sel = _rate(np.bincount(inv, weights=pred_pos, minlength=k), count)
    if yt is None:
        nan = np.full(k, np.nan)
        return GroupSummary(groups, count.astype(np.int64), sel, nan, nan.copy(), nan.copy())
    if not np.any(yt == pos_label) and not np.any(yp == pos_label):
        raise ValueError(f"pos_label={pos_label!r} occurs in neither y_true nor y_pred")
    true_pos = (yt == pos_label).astype(np.float64)
    pos = np.bincount(inv, weights=true_pos, minlength=k)
    tp = np.bincount(inv, weights=true_pos * pred_pos, minlength=k)
    fp = np.bincount(inv, weights=(1.0 - true_pos) * pred_pos, minlength=k)
    correct = np.bincount(inv, weights=(yt == yp).astype(np.float64), minlength=k)
    return GroupSummary(
        groups,
        count.astype(np.int64),
        sel,
        _rate(tp, pos),
        _rate(fp, count - pos),
        _rate(correct, count),
    )


def _spread(rates: np.ndarray) -> float:
    ok = rates[~np.isnan(rates)]
    if ok.size < 2:
        return float("nan")
    return float(ok.max() - ok.min())


def _check_groups(summary: GroupSummary) -> None:
    if summary.groups.size < 2:
        raise ValueError(
            f"sensitive_features must contain at least two groups, got {summary.groups.tolist()}"
        )


def demographic_parity_difference(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, pos_label: Any = 1
) -> float:
    """:math:`\\max_g SR_g - \\min_g SR_g` (0 is parity). ``y_true`` may be ``None``."""
    s = group_summary(y_true, y_pred, sensitive_features=sensitive_features, pos_label=pos_label)
    _check_groups(s)
    return _spread(s.selection_rate)


def demographic_parity_ratio(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, pos_label: Any = 1
) -> float:
    """:math:`\\min_g SR_g / \\max_g SR_g` (1 is parity; ``nan`` when no group is selected)."""
    s = group_summary(y_true, y_pred, sensitive_features=sensitive_features, pos_label=pos_label)
    _check_groups(s)
    hi = float(np.max(s.selection_rate))
    return float(np.min(s.selection_rate)) / hi if hi > 0 else float("nan")


def equal_opportunity_difference(
    y_true: Any, y_pred: Any, *, sensitive_features: Any, pos_label: Any = 1
) -> float:
    """:math:`\\max_g TPR_g - \\min_g TPR_g` (0 is equal opportunity)."""
    _inputs(y_true, y_pred, sensitive_features, need_true=True)
    s = group_summary(y_true, y_pred, sensitive_features=sensitive_features, pos_label=pos_label)
    _check_groups(s)
    return _spread(s.true_positive_rate)


def equalized_odds_difference(
    y_true: Any,
    y_pred: Any,
    *,
    sensitive_features: Any,
    pos_label: Any = 1,
    agg: str = "worst_case",
) -> float:
    """:math:`\\max(\\Delta TPR, \\Delta FPR)` (``agg="worst_case"``) or their mean (``agg="mean"``)."""
    if agg not in ("worst_case", "mean"):
        raise ValueError(f"agg must be 'worst_case' or 'mean', got {agg!r}")
    _inputs(y_true, y_pred, sensitive_features, need_true=True)
    s = group_summary(y_true, y_pred, sensitive_features=sensitive_features, pos_label=pos_label)
    _check_groups(s)
    d_tpr, d_fpr = _spread(s.true_positive_rate), _spread(s.false_positive_rate)
    return max(d_tpr, d_fpr) if agg == "worst_case" else 0.5 * (d_tpr + d_fpr)


def _binary_rates(
    y_pred: Any, sensitive_features: Any, unprivileged_value: Any, pos_label: Any
) -> tuple[float, float]:
    _, yp, sf = _inputs(None, y_pred, sensitive_features, need_true=False)
    groups = np.unique(sf)
    if groups.size != 2:
        raise ValueError(
            f"sensitive_features must be binary here, got {groups.size} groups {groups[:5].tolist()}"
        )
    unpriv = sf == unprivileged_value
    if not unpriv.any():
        raise ValueError(
            f"unprivileged_value={unprivileged_value!r} does not occur in sensitive_features {groups.tolist()}"
        )
    sel = yp == pos_label
    return float(sel[unpriv].mean()), float(sel[~unpriv].mean())


def disparate_impact(
    y_true: Any,
    y_pred: Any,
    *,
    sensitive_features: Any,
    unprivileged_value: Any,
    pos_label: Any = 1,
) -> float:
    """:math:`SR_{unpriv} / SR_{priv}` for a binary attribute (1 is parity; the "80% rule" asks >= 0.8).

    ``y_true`` is not used (accepted for a uniform signature). ``inf`` when only the privileged
    rate is 0, ``nan`` when both are."""
    u, p = _binary_rates(y_pred, sensitive_features, unprivileged_value, pos_label)
    if p == 0:
        return float("nan") if u == 0 else float("inf")
    return u / p


def statistical_parity_difference(
    y_true: Any,
    y_pred: Any,
    *,
    sensitive_features: Any,
    unprivileged_value: Any,
    pos_label: Any = 1,
) -> float:
    """Signed :math:`SR_{unpriv} - SR_{priv}` for a binary attribute (negative: unprivileged selected less)."""
    u, p = _binary_rates(y_pred, sensitive_features, unprivileged_value, pos_label)
    return u - p


def fairness_report(
    y_true: Any,
    y_pred: Any,
    *,
    sensitive_features: Any,
    unprivileged_value: Any,
    pos_label: Any = 1,
) -> dict[str, float]:
    """Accuracy and every metric above for one prediction, as a flat dict."""
    kw: dict[str, Any] = {"sensitive_features": sensitive_features, "pos_label": pos_label}
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    return {
        "accuracy": float(np.mean(yt == yp)) if yt.shape == yp.shape else float("nan"),
        "dp_difference": demographic_parity_difference(y_true, y_pred, **kw),
        "dp_ratio": demographic_parity_ratio(y_true, y_pred, **kw),
        "eop_difference": equal_opportunity_difference(y_true, y_pred, **kw),
        "eodds_difference": equalized_odds_difference(y_true, y_pred, **kw),
        "average_odds_difference": equalized_odds_difference(y_true, y_pred, agg="mean", **kw),
        "disparate_impact": disparate_impact(
            y_true, y_pred, unprivileged_value=unprivileged_value, **kw
        ),
        "spd": statistical_parity_difference(
            y_true, y_pred, unprivileged_value=unprivileged_value, **kw
        ),
    }

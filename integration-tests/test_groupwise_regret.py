"""groupwise-regret with balance-score, the way a downstream project would use them.

A binary task on the diabetes stream (papershelf.data, via groupwise_regret.diabetes_stream):
online groupwise classification over age / sex / BMI groups, its progressive probabilities
scored for over/under-confidence with balance_score, overall and per group.
"""

from __future__ import annotations

import numpy as np
from balance_score import balance_score
from groupwise_regret import GroupwiseClassifier, diabetes_stream


def test_groupwise_probabilities_scored_by_balance_score() -> None:
    s = diabetes_stream(seed=0)
    y = (s.y > np.median(s.y)).astype(np.int64)
    clf = GroupwiseClassifier(groups=list(s.group_names))
    rec = clf.partial_fit_predict(s.X, y, s.membership)
    prob = rec.prediction
    assert prob.shape == (y.size,) and np.all((prob > 0) & (prob < 1))

    # the online learner is useful: progressive accuracy on the second half beats chance clearly
    half = y.size // 2
    assert ((prob[half:] >= 0.5) == y[half:]).mean() > 0.6

    score = balance_score(y[half:], prob[half:])
    assert -1.0 <= score <= 1.0
    # sharpening the same probabilities (logit x 4) makes them over-confident: balance drops
    logit = np.log(prob[half:] / (1 - prob[half:]))
    sharp = 1 / (1 + np.exp(-4 * logit))
    assert balance_score(y[half:], sharp) < score - 0.05

    # per-group scores, as a fairness audit would report them
    per_group = {
        g: balance_score(y[half:][s.membership[half:, j]], prob[half:][s.membership[half:, j]])
        for j, g in enumerate(s.group_names)
    }
    assert all(np.isfinite(v) and -1.0 <= v <= 1.0 for v in per_group.values())

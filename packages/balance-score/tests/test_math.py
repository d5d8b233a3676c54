"""Closed forms, identities, inequalities and the statistical property of the Balance score."""

from __future__ import annotations

import balance_score as bs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .conftest import make_problem

FIXTURE_Q = [0.9, 0.8, 0.7, 0.6, 0.5, 0.0, 0.3, 0.4]
FIXTURE_Y = [0, 1, 0, 1, 1, 0, 0, 0]

probs = hnp.arrays(
    np.float64, st.integers(1, 60), elements=st.floats(0.0, 1.0, allow_subnormal=False)
)


def closed_form(y: np.ndarray, q: np.ndarray) -> float:
    """accuracy − mean confidence, straight from the definition."""
    y = np.asarray(y)
    q = np.asarray(q, dtype=np.float64)
    return float(np.mean((q >= 0.5).astype(int) == y) - np.mean(np.maximum(q, 1.0 - q)))


def test_fixture_from_the_notes() -> None:
    assert bs.balance_score(FIXTURE_Y, FIXTURE_Q) == pytest.approx(0.025, abs=1e-15)


def test_gain_table_cases() -> None:
    q = np.array([0.8, 0.2, 0.8, 0.2, 0.5, 0.5])
    y = np.array([1, 0, 0, 1, 1, 0])
    # correct: 1 - q, q; wrong: -q, -(1 - q); a tie at 0.5 is a positive prediction
    np.testing.assert_allclose(bs.balance_gain(y, q), [0.2, 0.2, -0.8, -0.8, 0.5, -0.5], atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(q=probs, data=st.data())
def test_closed_form_accuracy_minus_confidence(q: np.ndarray, data: st.DataObject) -> None:
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=q.size, max_size=q.size)))
    assert abs(bs.balance_score(y, q) - closed_form(y, q)) <= 1e-12


def test_closed_form_large(rng: np.random.Generator) -> None:
    y, q = make_problem(rng, 200_001, power=2.0)  # several chunks
    assert abs(bs.balance_score(y, q) - closed_form(y, q)) <= 1e-12


@settings(max_examples=150, deadline=None)
@given(
    q=probs,
    data=st.data(),
    n_bins=st.integers(1, 25),
    strategy=st.sampled_from(["uniform", "quantile"]),
)
def test_abs_balance_bounded_by_top_label_ece(
    q: np.ndarray, data: st.DataObject, n_bins: int, strategy: str
) -> None:
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=q.size, max_size=q.size)))
    ece = bs.expected_calibration_error(y, q, n_bins=n_bins, strategy=strategy, mode="top_label")
    assert abs(bs.balance_score(y, q)) <= ece + 1e-12


@settings(max_examples=100, deadline=None)
@given(q=probs, data=st.data())
def test_one_bin_top_label_ece_equals_abs_balance(q: np.ndarray, data: st.DataObject) -> None:
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=q.size, max_size=q.size)))
    for strategy in ("uniform", "quantile"):
        ece = bs.expected_calibration_error(y, q, n_bins=1, strategy=strategy, mode="top_label")
        assert ece == pytest.approx(abs(bs.balance_score(y, q)), abs=1e-12)


def test_abs_balance_bounded_by_positive_ece_when_05_is_an_edge(
    problem: tuple[np.ndarray, np.ndarray],
) -> None:
    y, q = problem
    for m in (2, 4, 10, 20):
        assert abs(bs.balance_score(y, q)) <= bs.expected_calibration_error(y, q, n_bins=m) + 1e-12


def test_unbiased_when_labels_follow_the_predictions(rng: np.random.Generator) -> None:
    # y ~ Bernoulli(q): E[Balance] = 0. Average 200 replicates of n = 500: the standard error of the
    # mean is <= 0.5 / sqrt(200 * 500) = 0.0016; 4 SE = 0.0063. A biased metric (ECE) sits far above.
    n, reps = 500, 200
    vals, eces = [], []
    for _ in range(reps):
        q = rng.beta(2.0, 2.0, n)
        y = (rng.random(n) < q).astype(int)
        vals.append(bs.balance_score(y, q))
        eces.append(bs.expected_calibration_error(y, q))
    assert abs(np.mean(vals)) < 4 * 0.5 / np.sqrt(n * reps)
    assert np.mean(eces) > 0.03  # binned ECE of a perfectly calibrated model: biased upward


def test_expected_balance_and_true_calibration_error(rng: np.random.Generator) -> None:
    p = rng.beta(2, 2, 1000)
    logit = np.log(p / (1 - p))
    over = 1 / (
        1 + np.exp(-2 * logit)
    )  # monotone over-confident distortion: every error oriented alike
    assert bs.expected_balance_score(p, over) == pytest.approx(
        -bs.true_calibration_error(p, over), abs=1e-12
    )
    under = 1 / (1 + np.exp(-0.5 * logit))
    assert bs.expected_balance_score(p, under) == pytest.approx(
        bs.true_calibration_error(p, under), abs=1e-12
    )
    assert bs.expected_balance_score(p, p) == 0.0
    assert bs.true_calibration_error(p, over, norm="max") == pytest.approx(np.max(np.abs(over - p)))
    assert bs.true_calibration_error(p, over, norm="l2") == pytest.approx(
        np.sqrt(np.mean((over - p) ** 2))
    )
    # cancellation: a shift that is over-confident above 0.5 and under-confident below
    assert abs(bs.expected_balance_score(p, p)) <= bs.true_calibration_error(p, p + 0.0) + 1e-15


def test_range_and_constant_half_predictor() -> None:
    y = np.array([0, 1, 0, 1])
    assert bs.balance_score(y, np.full(4, 0.5)) == 0.0  # the documented limitation
    assert bs.balance_score([1, 0], [0.0, 1.0]) == -1.0  # worst: confidently wrong
    assert bs.balance_score([1, 0], [0.5, 0.4]) == pytest.approx(0.45)


def test_weights_equal_repetition(rng: np.random.Generator) -> None:
    y, q = make_problem(rng, 50)
    k = rng.integers(0, 4, 50)
    rep_y, rep_q = np.repeat(y, k), np.repeat(q, k)
    for fn in (bs.balance_score, bs.brier_score):
        assert fn(y, q, sample_weight=k) == pytest.approx(fn(rep_y, rep_q), abs=1e-12)
    for norm in ("l1", "l2", "max"):
        for mode in ("positive", "top_label"):
            a = bs.expected_calibration_error(y, q, sample_weight=k, norm=norm, mode=mode)
            assert a == pytest.approx(
                bs.expected_calibration_error(rep_y, rep_q, norm=norm, mode=mode), abs=1e-12
            )


def test_label_encodings_and_two_columns(problem: tuple[np.ndarray, np.ndarray]) -> None:
    y, q = problem
    ref = bs.balance_score(y, q)
    assert bs.balance_score(y.astype(bool), q) == ref
    assert bs.balance_score(2 * y - 1, q) == ref
    assert bs.balance_score(y.astype(float), q[:, None]) == ref
    assert bs.balance_score(np.where(y == 1, "yes", "no"), q, pos_label="yes") == ref
    assert bs.balance_score(1 - y, q, pos_label=0) == ref
    assert bs.balance_score(y, np.column_stack([1 - q, q])) == pytest.approx(ref, abs=1e-15)
    assert bs.brier_score(y, np.column_stack([1 - q, q])) == pytest.approx(
        bs.brier_score(y, q), abs=1e-15
    )


def test_threshold(problem: tuple[np.ndarray, np.ndarray]) -> None:
    y, q = problem
    assert bs.balance_score(y, q, threshold=0.0) == pytest.approx(np.mean(y - q), abs=1e-12)
    g = bs.balance_gain(y, q, threshold=0.3)
    np.testing.assert_allclose(g, np.where(q >= 0.3, y - q, q - y), atol=0)


def test_inputs_not_modified(problem: tuple[np.ndarray, np.ndarray]) -> None:
    y, q = problem
    y0, q0 = y.copy(), q.copy()
    for fn in (
        bs.balance_score,
        bs.expected_calibration_error,
        bs.brier_score,
        bs.smooth_calibration_error,
    ):
        fn(y, q)
    bs.balance_gain(y, q)
    bs.brier_decomposition(y, q)
    bs.corp_decomposition(y, q)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(q, q0)


def test_zero_and_one_counted_once_in_edge_bins() -> None:
    q = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.55])
    y = np.array([0, 1, 1, 1, 0, 1])
    d = bs.reliability_diagram(y, q, n_bins=10)
    assert d.weight.sum() == q.size
    assert d.weight[0] == 2 and d.weight[-1] == 3 and d.weight[5] == 1
    assert d.mean_outcome[0] == 0.5 and d.mean_outcome[-1] == pytest.approx(2 / 3)


@settings(max_examples=100, deadline=None)
@given(q=probs, n_bins=st.integers(1, 40))
def test_uniform_fast_path_matches_searchsorted(q: np.ndarray, n_bins: int) -> None:
    from balance_score._binning import assign_bins

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    grid = np.concatenate([q, edges, np.nextafter(edges, 2), np.nextafter(edges, -1)])
    grid = grid[(grid >= 0) & (grid <= 1)]
    np.testing.assert_array_equal(
        assign_bins(grid, edges), np.searchsorted(edges[1:-1], grid, side="right")
    )
    counts, _ = np.histogram(grid, bins=edges)
    np.testing.assert_array_equal(np.bincount(assign_bins(grid, edges), minlength=n_bins), counts)


def test_quantile_edges_collapse_on_ties() -> None:
    q = np.r_[np.full(90, 0.7), np.linspace(0.01, 0.3, 10)]
    y = np.r_[np.ones(63), np.zeros(27), np.zeros(10)].astype(int)
    d = bs.reliability_diagram(y, q, n_bins=10, strategy="quantile")
    assert d.n_bins < 10  # the edges at the tied value 0.7 merged into one
    assert d.weight[-1] == 90  # the whole tie sits in one bin, counted once
    assert d.weight.sum() == 100
    assert np.all(np.diff(d.edges) > 0)
    assert bs.expected_calibration_error(y, q, strategy="quantile") == pytest.approx(
        d.calibration_error()
    )
    ones = bs.expected_calibration_error(np.ones(5), np.ones(5), strategy="quantile")
    assert ones == 0.0


def test_top_label_and_positive_diagrams(problem: tuple[np.ndarray, np.ndarray]) -> None:
    y, q = problem
    d = bs.reliability_diagram(y, q, mode="top_label")
    assert np.all(d.weight[:5] == 0)  # confidence >= 0.5
    full = d.weight > 0
    assert np.all(
        (d.mean_score[full] >= d.edges[:-1][full]) & (d.mean_score[full] <= d.edges[1:][full])
    )
    balance = np.nansum(d.gap * d.weight) / d.weight.sum()
    assert balance == pytest.approx(bs.balance_score(y, q), abs=1e-12)
    assert d.calibration_error() == pytest.approx(
        bs.expected_calibration_error(y, q, mode="top_label"), abs=1e-15
    )


def test_norm_ordering(problem: tuple[np.ndarray, np.ndarray]) -> None:
    y, q = problem
    e1, e2, emax = (bs.expected_calibration_error(y, q, norm=n) for n in ("l1", "l2", "max"))
    assert e1 <= e2 + 1e-15 <= emax + 2e-15


def test_adaptive_calibration_error_definition(problem: tuple[np.ndarray, np.ndarray]) -> None:
    y, q = problem
    d = bs.reliability_diagram(y, q, strategy="quantile")
    full = d.weight > 0
    assert bs.adaptive_calibration_error(y, q) == pytest.approx(
        np.mean(np.abs(d.gap[full])), abs=1e-14
    )


@settings(max_examples=100, deadline=None)
@given(
    q=probs,
    data=st.data(),
    n_bins=st.integers(1, 15),
    strategy=st.sampled_from(["uniform", "quantile"]),
)
def test_brier_five_term_identity(
    q: np.ndarray, data: st.DataObject, n_bins: int, strategy: str
) -> None:
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=q.size, max_size=q.size)))
    w = data.draw(hnp.arrays(np.float64, q.size, elements=st.floats(0.1, 3.0)))
    d = bs.brier_decomposition(y, q, n_bins=n_bins, strategy=strategy, sample_weight=w)
    total = (
        d.reliability
        - d.resolution
        + d.uncertainty
        + d.within_bin_variance
        - d.within_bin_covariance
    )
    assert total == pytest.approx(d.brier, abs=1e-12)
    assert d.brier == pytest.approx(bs.brier_score(y, q, sample_weight=w), abs=1e-14)
    assert d.reliability >= 0 and d.resolution >= -1e-15 and d.within_bin_variance >= 0


def test_brier_three_terms_when_constant_within_bins(rng: np.random.Generator) -> None:
    q = rng.choice([0.05, 0.25, 0.45, 0.65, 0.85], size=500)
    y = (rng.random(500) < q).astype(int)
    d = bs.brier_decomposition(y, q, n_bins=5)
    assert d.within_bin_variance == pytest.approx(0, abs=1e-15)
    assert d.within_bin_covariance == pytest.approx(0, abs=1e-15)
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(d.brier, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(q=probs, data=st.data())
def test_corp_identity_and_signs(q: np.ndarray, data: st.DataObject) -> None:
    q = np.round(q, 1)  # ties
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=q.size, max_size=q.size)))
    c = bs.corp_decomposition(y, q)
    assert c.miscalibration - c.discrimination + c.uncertainty == pytest.approx(c.brier, abs=1e-12)
    assert c.miscalibration >= -1e-12 and c.discrimination >= -1e-12
    order = np.argsort(q, kind="stable")
    assert np.all(np.diff(c.recalibrated[order]) >= -1e-12)
    same = q[:, None] == q[None, :]
    assert np.all(np.abs(c.recalibrated[:, None] - c.recalibrated[None, :])[same] <= 1e-12)


def test_corp_of_a_recalibrated_model_has_no_miscalibration(
    problem: tuple[np.ndarray, np.ndarray],
) -> None:
    y, q = problem
    qhat = bs.corp_decomposition(y, q).recalibrated
    assert bs.corp_decomposition(y, qhat).miscalibration == pytest.approx(0.0, abs=1e-12)


def test_smooth_ece_properties(rng: np.random.Generator) -> None:
    y, q = make_problem(rng, 3000, power=1.0)
    calibrated = bs.smooth_calibration_error(y, q)
    y2, q2 = make_problem(rng, 3000, power=2.5)
    miscal, sigma = bs.smooth_calibration_error(y2, q2, return_sigma=True)
    assert calibrated < 0.03 < miscal
    assert 0 < sigma <= 1
    # the fixed point sigma* ~ smECE(sigma*) up to the bisection resolution
    assert abs(sigma - miscal) < 0.01
    assert bs.smooth_calibration_error(y2, q2, sigma=0.05) == pytest.approx(
        bs.smooth_calibration_error(y2, q2, sigma=0.05, mode="positive")
    )
    p = rng.beta(2, 2, 3000)
    over = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))  # over-confident: the top label errs alike
    y3 = (rng.random(3000) < p).astype(int)
    assert bs.smooth_calibration_error(y3, over, mode="top_label") > 0.08
    assert bs.smooth_calibration_error(y3, p, mode="top_label") < 0.03


@pytest.mark.parametrize("n_bins", [2, 3, 5, 7, 10, 11, 13, 15, 20, 37, 100, 1000])
def test_uniform_plans_exact_near_every_edge(n_bins: int) -> None:
    """Both search-free paths (verified-exact division, and division + near-edge re-check) equal
    searchsorted on every double within 3 ulps of every edge, and in the chunked kernels."""
    from balance_score._binning import CHUNK, _uniform_plan, assign_bins, binned_sums

    plan = _uniform_plan(n_bins)
    assert plan is not None
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    up, down = [edges], [edges]
    for _ in range(3):
        up.append(np.nextafter(up[-1], 2.0))
        down.append(np.nextafter(down[-1], -1.0))
    g = np.clip(np.concatenate(up + down), 0.0, 1.0)
    g = np.concatenate([np.tile(g, CHUNK // g.size + 2), np.random.default_rng(0).random(999)])
    expected = np.searchsorted(edges[1:-1], g, side="right")
    np.testing.assert_array_equal(assign_bins(g, edges), expected)
    y = (np.arange(g.size) % 3 == 0).astype(np.int64)
    _, rsum, _ = binned_sums(y, g, None, edges, "positive", weights=False)
    np.testing.assert_allclose(
        rsum, np.bincount(expected, weights=y - g, minlength=n_bins), atol=1e-9
    )


def test_both_uniform_plans_are_used() -> None:
    from balance_score._binning import _uniform_plan

    assert _uniform_plan(10) == (0.1, 0)  # exact: no correction needed
    general = _uniform_plan(11)
    assert general is not None and general[1] > 0  # the near-edge re-check path


def test_integer_and_bool_labels_skip_the_float_copy_but_agree() -> None:
    rng = np.random.default_rng(3)
    q = rng.random(70_001)
    q[:500] = np.round(q[:500], 1)
    y = rng.random(q.size) < q
    for mode in ("positive", "top_label"):
        ref = bs.expected_calibration_error(y.astype(float), q, mode=mode, n_bins=11)
        for labels in (y, y.astype(np.int8), y.astype(np.uint64), y.astype(np.int64)):
            assert bs.expected_calibration_error(labels, q, mode=mode, n_bins=11) == ref
    ref = bs.balance_score(y.astype(float), q)
    assert bs.balance_score(y, q) == ref == bs.balance_score(y.astype(np.int64), q)
    assert bs.balance_score(y, q) == pytest.approx(float(np.mean(bs.balance_gain(y, q))), abs=1e-12)


def test_negative_zero_probability_is_accepted() -> None:
    q = np.array([-0.0, 0.3, 1.0])
    assert bs.expected_calibration_error([0, 1, 1], q) == bs.expected_calibration_error(
        [0, 1, 1], np.abs(q)
    )

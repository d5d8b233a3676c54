"""The fast paths equal the straightforward reference implementations they replaced."""

from __future__ import annotations

import threading

import balance_score as bs
import numpy as np
import pytest
from balance_score import brier as brier_mod
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .conftest import make_problem


def reference_isotonic_fit(y: np.ndarray, q: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """The previous implementation: a sequential pool-adjacent-violators stack in Python."""
    order = np.argsort(q, kind="stable")
    qs = q[order]
    ws = np.ones_like(qs) if w is None else w[order]
    starts = np.flatnonzero(np.r_[True, qs[1:] != qs[:-1]])
    bw = np.add.reduceat(ws, starts)
    by = np.add.reduceat(ws * y[order], starts)
    sw: list[float] = []
    sy: list[float] = []
    cnt: list[int] = []
    for wi, yi in zip(bw.tolist(), by.tolist()):
        cw, cy, cc = wi, yi, 1
        while sw and sy[-1] * cw >= cy * sw[-1]:
            cw += sw.pop()
            cy += sy.pop()
            cc += cnt.pop()
        sw.append(cw)
        sy.append(cy)
        cnt.append(cc)
    vals = np.asarray(sy) / np.where(np.asarray(sw) > 0, np.asarray(sw), 1.0)
    per_sample = np.repeat(np.repeat(vals, cnt), np.diff(np.r_[starts, qs.shape[0]]))
    out = np.empty_like(q)
    out[order] = per_sample
    return out


def _random_case(
    rng: np.random.Generator, trial: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    n = int(rng.integers(1, 2000))
    q = rng.random(n)
    if trial % 3 == 0:
        q = np.round(q, int(rng.integers(0, 3)))  # heavy ties
    y = (rng.random(n) < q ** rng.uniform(0.3, 3.0)).astype(np.float64)
    w = None
    if trial % 4 == 1:
        w = rng.random(n) * (rng.random(n) < 0.7)  # some zero weights, zero-weight tie blocks
        w[int(rng.integers(n))] = 1.0
    elif trial % 4 == 3:
        w = rng.exponential(size=n)
    return y, q, w


@pytest.mark.parametrize("rounds", [None, 0, 1, 3])
def test_vectorised_pav_equals_sequential_stack(
    rounds: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random, tied, weighted and zero-weight inputs; ``rounds`` forces the sequential finish."""
    if rounds is not None:
        monkeypatch.setattr(brier_mod, "_PAV_ROUNDS", rounds)
    rng = np.random.default_rng(11)
    for trial in range(120):
        y, q, w = _random_case(rng, trial)
        np.testing.assert_allclose(
            brier_mod._isotonic_fit(y, q, w), reference_isotonic_fit(y, q, w), rtol=0, atol=1e-12
        )


def test_vectorised_pav_on_adversarial_and_edge_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    q = np.linspace(0.0, 1.0, 3000)
    y = q**2
    y[-1] = -50.0  # one violator at the end unwinds the whole increasing run, one block per round
    for rounds in (64, 5):
        monkeypatch.setattr(brier_mod, "_PAV_ROUNDS", rounds)
        np.testing.assert_allclose(
            brier_mod._isotonic_fit(y, q), reference_isotonic_fit(y, q), rtol=0, atol=1e-12
        )
    for y1, q1 in (([1.0], [0.3]), ([0.0, 1.0], [0.5, 0.5]), ([1.0, 0.0], [0.2, 0.9])):
        ya, qa = np.asarray(y1), np.asarray(q1)
        np.testing.assert_allclose(brier_mod._isotonic_fit(ya, qa), reference_isotonic_fit(ya, qa))
    # leading and trailing zero-weight tie blocks
    q = np.array([0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    w = np.array([0.0, 0.0, 2.0, 1.0, 0.0, 3.0, 0.0])
    np.testing.assert_allclose(brier_mod._isotonic_fit(y, q, w), reference_isotonic_fit(y, q, w))


def test_vectorised_pav_matches_sklearn_on_continuous_scores(rng: np.random.Generator) -> None:
    from sklearn.isotonic import IsotonicRegression

    y, q = make_problem(rng, 20_000, power=1.4)
    ref = IsotonicRegression(out_of_bounds="clip").fit(q, y).predict(q)
    np.testing.assert_allclose(bs.corp_decomposition(y, q).recalibrated, ref, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    q=hnp.arrays(
        np.float64, st.integers(1, 80), elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 1.0])
    ),
    data=st.data(),
)
def test_vectorised_pav_property(q: np.ndarray, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.float64, q.shape, elements=st.sampled_from([0.0, 1.0])))
    w = data.draw(hnp.arrays(np.float64, q.shape, elements=st.floats(0.0, 5.0)))
    if not w.sum() > 0:
        w[0] = 1.0
    np.testing.assert_allclose(
        brier_mod._isotonic_fit(y, q, w), reference_isotonic_fit(y, q, w), rtol=0, atol=1e-12
    )


def reference_ece(y: np.ndarray, q: np.ndarray, n_bins: int) -> float:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:-1], q, side="right")
    r = np.bincount(idx, weights=y - q, minlength=n_bins)
    return float(np.abs(r).sum() / q.size)


@pytest.mark.parametrize("n_bins", [2, 7, 10, 11, 15])
def test_chunked_uniform_kernel_across_chunks_and_label_dtypes(n_bins: int) -> None:
    """Several chunks (the int32 index path for verified ``n_bins``, the re-check path for the
    others), float labels (no copy) and integer labels (converted per chunk)."""
    from balance_score._binning import CHUNK

    rng = np.random.default_rng(n_bins)
    q = rng.random(2 * CHUNK + 123)
    q[:200] = np.linspace(0.0, 1.0, 200)
    q[200:400] = np.round(q[200:400], 1)
    y = (rng.random(q.size) < q).astype(np.int64)
    ref = reference_ece(y.astype(np.float64), q, n_bins)
    for labels in (y, y.astype(np.float64), y.astype(bool)):
        assert bs.expected_calibration_error(labels, q, n_bins=n_bins) == pytest.approx(
            ref, rel=0, abs=1e-12
        )


def test_reused_scratch_buffers_are_thread_safe() -> None:
    rng = np.random.default_rng(5)
    problems = [make_problem(rng, 150_000 + 1000 * i, power=1.0 + 0.2 * i) for i in range(4)]
    expected = [
        (
            bs.expected_calibration_error(y, q),
            bs.balance_score(y, q),
            bs.expected_calibration_error(y, q, mode="top_label"),
        )
        for y, q in problems
    ]
    got: dict[int, list[tuple[float, float, float]]] = {}

    def work(i: int) -> None:
        y, q = problems[i]
        got[i] = [
            (
                bs.expected_calibration_error(y, q),
                bs.balance_score(y, q),
                bs.expected_calibration_error(y, q, mode="top_label"),
            )
            for _ in range(5)
        ]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert all(r == expected[i] for r in got[i])


def test_weighted_quantile_with_unit_weights_is_numpys_linear_quantile_bit_for_bit() -> None:
    from balance_score._binning import weighted_quantile

    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 7, 10, 11, 100, 999, 5000):
        for ties in (False, True):
            x = rng.random(n)
            if ties:
                x = np.round(x, 1)
            for m in (1, 2, 3, 7, 10, 13, 15, 20, 50):
                p = np.linspace(0.0, 1.0, m + 1)
                np.testing.assert_array_equal(
                    weighted_quantile(x, np.ones(n), p), np.quantile(x, p)
                )


def test_weighted_quantile_definition() -> None:
    from balance_score._binning import weighted_quantile

    x, w = np.array([0.9, 0.1, 0.2]), np.array([2.0, 1.0, 1.0])
    # midpoints above the first: 0, 1, 2.5; the median sits at mass 1.25, 1/6 of the way 0.2 -> 0.9
    np.testing.assert_allclose(
        weighted_quantile(x, w, np.array([0.0, 0.5, 1.0])), [0.1, 0.2 + 0.7 / 6, 0.9]
    )
    rng = np.random.default_rng(3)
    x, w = rng.random(500), rng.exponential(size=500)
    p = np.linspace(0.0, 1.0, 11)
    ref = weighted_quantile(x, w, p)
    assert np.all(np.diff(ref) >= 0) and ref[0] == x.min() and ref[-1] == x.max()
    np.testing.assert_allclose(weighted_quantile(x, 7.5 * w, p), ref, rtol=0, atol=1e-14)
    # zero weights are the same as dropping the samples
    w0 = w.copy()
    w0[::3] = 0.0
    np.testing.assert_array_equal(
        weighted_quantile(x, w0, p), weighted_quantile(x[w0 > 0], w[w0 > 0], p)
    )


def test_quantile_edges_with_weights() -> None:
    from balance_score._binning import bin_edges

    rng = np.random.default_rng(4)
    y, q = make_problem(rng, 20_000)
    unit = bs.reliability_diagram(y, q, n_bins=10, strategy="quantile")
    for w in (np.ones(q.size), np.full(q.size, 0.3)):  # equal weights: exactly the unweighted edges
        d = bs.reliability_diagram(y, q, n_bins=10, strategy="quantile", sample_weight=w)
        np.testing.assert_array_equal(d.edges, unit.edges)
        assert bs.expected_calibration_error(
            y, q, strategy="quantile", sample_weight=w
        ) == pytest.approx(bs.expected_calibration_error(y, q, strategy="quantile"), abs=1e-15)
    # unequal weights: every bin holds ~1/10 of the weight mass (not of the sample count)
    w = np.where(q > 0.5, 5.0, 1.0)
    d = bs.reliability_diagram(y, q, n_bins=10, strategy="quantile", sample_weight=w)
    np.testing.assert_allclose(d.weight / d.weight.sum(), 0.1, atol=5.0 / d.weight.sum() * 2)
    assert np.sum(unit.edges > 0.5) != np.sum(d.edges > 0.5)
    np.testing.assert_array_equal(
        bin_edges(q, 10, "quantile", w),
        bs.brier_decomposition(y, q, strategy="quantile", sample_weight=w).edges,
    )
    ace = bs.adaptive_calibration_error(y, q, sample_weight=w)
    full = d.weight > 0
    assert ace == pytest.approx(float(np.mean(np.abs(d.gap[full]))), abs=1e-12)


@pytest.mark.parametrize("mode", ["positive", "top_label"])
@pytest.mark.parametrize("sigma", [None, 0.05])
def test_weighted_smooth_ece(mode: str, sigma: float | None) -> None:
    rng = np.random.default_rng(6)
    y, q = make_problem(rng, 3000, power=1.6)
    ref, ref_sigma = bs.smooth_calibration_error(y, q, mode=mode, sigma=sigma, return_sigma=True)
    got, got_sigma = bs.smooth_calibration_error(
        y, q, mode=mode, sigma=sigma, sample_weight=np.ones(q.size), return_sigma=True
    )
    assert got == pytest.approx(ref, rel=0, abs=1e-12) and got_sigma == ref_sigma
    # the weights' scale does not matter
    w = rng.integers(0, 4, q.size).astype(np.float64)
    a = bs.smooth_calibration_error(y, q, mode=mode, sigma=sigma, sample_weight=w)
    b = bs.smooth_calibration_error(y, q, mode=mode, sigma=sigma, sample_weight=0.01 * w)
    assert a == pytest.approx(b, rel=1e-12)
    # integer weights act like repeated samples (up to the 1e-4 density floor) ...
    k = w.astype(np.intp)
    rep = bs.smooth_calibration_error(np.repeat(y, k), np.repeat(q, k), mode=mode, sigma=sigma)
    assert a == pytest.approx(rep, rel=1e-6)
    # ... and really change the value
    assert abs(a - ref) > 1e-4


def test_fused_range_checks_give_the_usual_errors_and_conversions() -> None:
    """The uniform ECE checks q and integer labels chunk by chunk; a failing chunk falls back
    to the usual validation, so errors and label conversions are the same as everywhere."""
    from balance_score._binning import CHUNK

    rng = np.random.default_rng(8)
    n = 2 * CHUNK + 10
    q = rng.random(n)
    y = (rng.random(n) < q).astype(np.int64)
    ref = reference_ece(y.astype(np.float64), q, 10)
    assert bs.expected_calibration_error(y, q) == pytest.approx(ref, abs=1e-12)
    assert bs.expected_calibration_error(
        y, q[::1].copy()[::-1][::-1]
    ) == bs.expected_calibration_error(y, q)
    strided = np.repeat(q, 2)[::2]  # a non-contiguous view
    assert bs.expected_calibration_error(y, strided) == bs.expected_calibration_error(y, q)
    pm = np.where(y == 1, 1, -1)  # {-1, 1} labels: converted by the fallback validation
    assert bs.expected_calibration_error(pm, q) == bs.expected_calibration_error(y.astype(float), q)
    for bad, match in (
        (np.nan, "y_prob contains NaN"),
        (1.5, r"y_prob must lie in \[0, 1\]"),
        (-0.25, "y_prob must lie"),
    ):
        qb = q.copy()
        qb[CHUNK + 5] = bad
        with pytest.raises(ValueError, match=match) as err:
            bs.expected_calibration_error(y, qb)
        assert f"at index {CHUNK + 5}" in str(err.value)
    yb = y.copy()
    yb[-1] = 2
    with pytest.raises(ValueError, match="y_true"):
        bs.expected_calibration_error(yb, q)
    for labels in (y.astype(bool), y.astype(np.uint8), y.astype(np.int32)):
        for mode in ("positive", "top_label"):
            for norm in ("l1", "l2", "max"):
                assert bs.expected_calibration_error(
                    labels, q, mode=mode, norm=norm
                ) == pytest.approx(
                    bs.expected_calibration_error(y.astype(float), q, mode=mode, norm=norm),
                    abs=1e-12,
                )

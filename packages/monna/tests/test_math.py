"""NNA, the mixing rules and the schedule against brute-force references and closed forms."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monna import NNA, nna, nna_numpy, nna_torch
from monna.aggregators import GeometricMedian, Krum, Median, SelfCentredClipping, TrimmedMean
from monna.functional import learning_rate, line_maximize, momentum_half_step


def brute_nna(v: np.ndarray, f: int, pivot: int) -> np.ndarray:
    """Among all (m - f)-subsets holding the pivot, the one with the smallest total distance."""
    m = v.shape[0]
    d = np.linalg.norm(v - v[pivot], axis=1)
    best, best_cost = None, np.inf
    for sub in itertools.combinations(range(m), m - f):
        cost = d[list(sub)].sum()
        if cost < best_cost - 1e-12:
            best, best_cost = sub, cost
    assert best is not None
    out: np.ndarray = v[list(best)].mean(axis=0)
    return out


def official_cva(vectors: list[torch.Tensor], f: int, honest_index: int) -> torch.Tensor:
    """A port of the official aggregators/cva.py (P2P branch): Python stable sort on .item()."""
    pivot = vectors[honest_index]
    scores = sorted(
        ((i, vectors[i].sub(pivot).norm().item()) for i in range(len(vectors))), key=lambda x: x[1]
    )
    return torch.stack([vectors[scores[j][0]] for j in range(len(vectors) - f)]).mean(dim=0)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 8),
    d=st.integers(1, 5),
    data=st.data(),
)
def test_nna_equals_brute_force(m: int, d: int, data: st.DataObject) -> None:
    f = data.draw(st.integers(0, (m - 1) // 2))
    pivot = data.draw(st.integers(0, m - 1))
    seed = data.draw(st.integers(0, 2**31))
    v = np.random.default_rng(seed).standard_normal((m, d))
    np.testing.assert_allclose(nna_numpy(v, f, pivot), brute_nna(v, f, pivot), atol=1e-12)
    np.testing.assert_allclose(
        nna_torch(torch.from_numpy(v), f, pivot).numpy(), brute_nna(v, f, pivot), atol=1e-12
    )


def test_nna_matches_official_cva_port_and_dispatch(rng: np.random.Generator) -> None:
    for _ in range(20):
        v = torch.from_numpy(rng.standard_normal((11, 7)))
        for p in (0, 5, 10):
            ref = official_cva(list(v), 3, p)
            torch.testing.assert_close(nna(v, 3, p), ref, rtol=0, atol=1e-14)
            np.testing.assert_allclose(nna(v.numpy(), 3, p), ref.numpy(), atol=1e-14)


def test_ties_go_to_the_lower_index_like_the_official_stable_sort() -> None:
    # rows 1..4 are all at distance 1 from the pivot; only 3 of them can be kept
    v = torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [5.0, 5.0]],
        dtype=torch.float64,
    )
    out = nna_torch(v, 2, 0)
    torch.testing.assert_close(out, v[[0, 1, 2, 3]].mean(0))
    torch.testing.assert_close(out, official_cva(list(v), 2, 0))
    np.testing.assert_allclose(nna_numpy(v.numpy(), 2, 0), out.numpy())


def test_batched_and_per_pivot_forms_equal_the_single_form(rng: np.random.Generator) -> None:
    v = torch.from_numpy(rng.standard_normal((4, 9, 6)))
    batched = nna_torch(v, 2, 3)
    for b in range(4):
        torch.testing.assert_close(batched[b], nna_torch(v[b], 2, 3), rtol=0, atol=0)
    pivots = torch.tensor([0, 4, 8, 2])
    per = nna_torch(v, 2, pivots)
    for b in range(4):
        torch.testing.assert_close(per[b], nna_torch(v[b], 2, int(pivots[b])), rtol=0, atol=0)
    one = v[0]
    torch.testing.assert_close(
        NNA().all_pivots(one, 2, 6), torch.stack([nna_torch(one, 2, i) for i in range(6)])
    )


def test_non_finite_vectors_are_treated_as_byzantine() -> None:
    v = torch.randn(7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bad = v.clone()
    bad[5] = float("nan")
    bad[6, 1] = float("inf")
    out = nna_torch(bad, 2, 0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, v[:5].mean(0))  # the 5 finite rows are the 7 - 2 kept
    np.testing.assert_allclose(nna_numpy(bad.numpy(), 2, 0), out.numpy())
    with pytest.raises(ValueError, match="non-finite, more than f=1"):
        nna_torch(bad, 1, 0)
    with pytest.raises(ValueError, match="pivot vector"):
        nna_torch(bad, 2, 5)


def test_nna_keeps_dtype_and_does_not_modify_input() -> None:
    v = torch.randn(5, 3, dtype=torch.float32)
    before = v.clone()
    assert nna_torch(v, 1, 2).dtype == torch.float32
    assert torch.equal(v, before)


def test_trimmed_mean_median_closed_forms(rng: np.random.Generator) -> None:
    v = rng.standard_normal((9, 5))
    s = np.sort(v, axis=0)
    np.testing.assert_allclose(TrimmedMean()(torch.from_numpy(v), 2, 0).numpy(), s[2:7].mean(0))
    np.testing.assert_allclose(Median()(torch.from_numpy(v), 2, 0).numpy(), np.median(v, axis=0))
    np.testing.assert_allclose(
        Median()(torch.from_numpy(v[:8]), 2, 0).numpy(), np.median(v[:8], axis=0)
    )


def test_krum_brute_force(rng: np.random.Generator) -> None:
    v = rng.standard_normal((8, 4))
    f = 2
    scores = []
    for i in range(8):
        d = sorted(float(np.sum((v[i] - v[j]) ** 2)) for j in range(8) if j != i)
        scores.append(sum(d[: 8 - f - 1]))
    np.testing.assert_allclose(Krum()(torch.from_numpy(v), f, 0).numpy(), v[int(np.argmin(scores))])


def test_geometric_median_matches_the_official_smoothed_weiszfeld(rng: np.random.Generator) -> None:
    v = torch.from_numpy(rng.standard_normal((7, 5)))
    z = torch.zeros(5, dtype=torch.float64)
    for _ in range(3):  # aggregators/rfa.py with alphas = 1/n, nu = 0.1
        betas = [(1 / 7) / max(z.sub(g).norm().item(), 0.1) for g in v]
        z = sum(b * g for b, g in zip(betas, v)) / sum(betas)
    torch.testing.assert_close(GeometricMedian()(v, 2, 0), z)


def test_scc_matches_the_official_centered_clipping(rng: np.random.Generator) -> None:
    v = torch.from_numpy(rng.standard_normal((7, 5)) * 3)
    g = v[4].clone()
    for _ in range(3):  # aggregators/centeredclip.py, g_prev = own model, clip_thresh = 2
        diffs = []
        for x in v:
            dv = x - g
            n = dv.norm().item()
            diffs.append(dv * (2.0 / n) if n > 2.0 else dv)
        g = g + torch.stack(diffs).mean(0)
    torch.testing.assert_close(SelfCentredClipping(tau=2.0)(v, 2, 4), g)


def official_line_maximize(
    scape: Callable[[float], float],
    evals: int = 16,
    start: float = 0.0,
    delta: float = 1.0,
    ratio: float = 0.8,
) -> float:
    best_x, best_y = start, scape(start)
    evals -= 1
    prop_x = best_x
    while evals > 0:
        prop_x = best_x + delta
        prop_y = scape(prop_x)
        evals -= 1
        if prop_y > best_y:
            best_y, best_x = prop_y, prop_x
            delta *= 2
        else:
            delta *= ratio
            break
    while evals > 0:
        if prop_x < best_x:
            prop_x += delta
        else:
            x = prop_x - delta
            while x < 0:
                x = (x + prop_x) / 2
            prop_x = x
        prop_y = scape(prop_x)
        evals -= 1
        if prop_y > best_y:
            best_y, best_x = prop_y, prop_x
        delta *= ratio
    return best_x


@pytest.mark.parametrize("peak", [0.3, 2.7, 11.0, 40.0])
def test_line_maximize_follows_the_official_search(peak: float) -> None:
    calls: list[float] = []

    def obj(x: float) -> float:
        calls.append(x)
        return -((x - peak) ** 2)

    got = line_maximize(obj, evals=16)
    ref_calls: list[float] = []

    def ref_obj(x: float) -> float:
        ref_calls.append(x)
        return -((x - peak) ** 2)

    ref = official_line_maximize(ref_obj)
    assert got == ref and calls == ref_calls and len(calls) == 16


def test_schedule_and_half_step() -> None:
    assert learning_rate(0, 0.75, 50, 50) == 0.75
    assert learning_rate(49, 0.75, 50, 50) == 0.75
    assert learning_rate(50, 0.75, 50, 50) == pytest.approx(0.375)
    assert learning_rate(120, 0.75, 50, 50) == pytest.approx(0.75 / 3)
    assert learning_rate(1499, 0.5, 167, 1500) == 0.5
    assert learning_rate(1500, 0.5, 167, 1500) == pytest.approx(0.5 / (1500 / 167 + 1))
    assert learning_rate(10_000, 0.3, 0, 1) == 0.3
    x, m, g = torch.ones(3), torch.full((3,), 2.0), torch.full((3,), 4.0)
    half, m2 = momentum_half_step(x, m, g, lr=0.5, beta=0.9)
    torch.testing.assert_close(m2, torch.full((3,), 0.9 * 2 + 0.1 * 4))
    torch.testing.assert_close(half, 1 - 0.5 * m2)
    assert torch.equal(m, torch.full((3,), 2.0))  # inputs untouched


def test_received_set_sampler_is_uniform_over_other_honest_nodes() -> None:
    from monna.core import sample_received

    gen = torch.Generator().manual_seed(0)
    counts = np.zeros((6, 6))
    for _ in range(400):
        r = sample_received(gen, 6, 3)
        for j in range(6):
            assert j not in r[j].tolist() and len(set(r[j].tolist())) == 3
            counts[j, r[j].numpy()] += 1
    off = counts[~np.eye(6, dtype=bool)] / 400
    assert np.allclose(off, 3 / 5, atol=0.08)

"""Invariants, the two-stage PCB object, coefficient search and the package surface."""

from __future__ import annotations

import itertools
from pathlib import Path

import pcb_merge as pm
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pcb_merge import functional as F
from test_parity import make_problem

from papershelf.testing import run_readme_blocks


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float = 1e-12) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=tol, atol=tol)


@pytest.mark.parametrize("scope", ["global", "tensor"])
@pytest.mark.parametrize("inter", ["sum", "normalized", "pairwise"])
def test_identical_task_vectors_give_masked_clamped_vector(scope: str, inter: str) -> None:
    base, models = make_problem(1, 0.1, seed=4)
    scores = pm.PCB(scope=scope, inter=inter, ratio=0.2, compute_dtype=torch.float64).fit(
        base, [models[0]] * 3
    )
    out = scores.merge(1.0)
    for k, c in scores.clamped.items():
        kept = (scores.scale[k][0] > 0).to(c.dtype)
        torch.testing.assert_close(
            (out[k] - base[k]).reshape(-1), c[0] * kept, rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("method", ["pcb", "ties", "task_arithmetic", "dare"])
@pytest.mark.parametrize("scope", ["global", "tensor"])
def test_task_order_equivariance(method: str, scope: str) -> None:
    base, models = make_problem(3, 0.1, seed=6)
    lam = [0.8, 1.0, 1.3]
    fn = getattr(pm, method)
    kw = {"compute_dtype": torch.float64, "scope": scope}
    ref = fn(base, models, lambdas=lam, **kw)
    if method == "dare":  # masks are seeded by task index, so permuting models permutes masks: skip
        return
    for perm in itertools.permutations(range(3)):
        _same(fn(base, [models[i] for i in perm], lambdas=[lam[i] for i in perm], **kw), ref, 1e-9)


def test_lambda_zero_limit_gives_base() -> None:
    base, models = make_problem(2, 0.1, seed=7)
    clamped = torch.randn(2, 10, dtype=torch.float64)
    assert torch.all(
        F.pcb_merge_rows(clamped, torch.rand(2, 10, dtype=torch.float64), torch.zeros(2)) == 0
    )
    for method in ("pcb", "ties", "task_arithmetic", "dare"):
        kw = {"scope": "global"} if method in ("pcb", "ties") else {}
        out = getattr(pm, method)(base, models, lambdas=1e-300, compute_dtype=torch.float64, **kw)
        _same(out, base)


def test_global_equals_tensor_for_single_tensor_model() -> None:
    base, models = make_problem(3, 0.1, seed=9)
    one = {"w": base["enc.weight"]}
    ms = [{"w": m["enc.weight"]} for m in models]
    for method in ("pcb", "ties"):
        fn = getattr(pm, method)
        _same(
            fn(one, ms, scope="global", compute_dtype=torch.float64),
            fn(one, ms, scope="tensor", compute_dtype=torch.float64),
        )


def test_inputs_never_modified_and_output_does_not_alias() -> None:
    base, models = make_problem(2, 0.1, seed=11)
    snap = [{k: v.clone() for k, v in sd.items()} for sd in (base, *models)]
    out = pm.pcb(base, models, scope="global")
    out["step"] += 1
    for sd, ref in zip((base, *models), snap):
        _same(sd, ref, 0.0)


def test_two_stage_merge_equals_functional_and_per_task_lambdas() -> None:
    base, models = make_problem(3, 0.1, seed=12)
    scores = pm.PCB(scope="global", ratio=0.15, compute_dtype=torch.float64).fit(base, models)
    _same(
        scores.merge([0.9, 1.2, 1.0]),
        pm.pcb(
            base,
            models,
            scope="global",
            ratio=0.15,
            lambdas=[0.9, 1.2, 1.0],
            compute_dtype=torch.float64,
        ),
    )
    assert set(scores.stats) == {"lo", "hi", "q", "max"}


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 400), r=st.floats(0.01, 1.0), o=st.floats(0.0, 0.49))
def test_rank_indices_are_valid(d: int, r: float, o: float) -> None:
    lo, hi, q = F.pcb_rank_indices(d, r, o)
    assert 0 <= lo <= hi <= d - 1 and 0 <= q <= d - 1
    assert -1 <= F.ties_rank(d, r) <= d - 1


def test_grid_and_evolutionary_search() -> None:
    target = [1.1, 0.9, 1.25]

    def objective(lam: list[float]) -> float:
        return -sum((a - b) ** 2 for a, b in zip(lam, target))

    g = pm.grid_search(objective, 3, [0.8, 1.0, 1.2])
    assert g.lambdas == [1.0, 1.0, 1.0] and len(g.history) == 3
    es = pm.evolutionary_search(objective, 3, bounds=(0.8, 1.3), budget=120, seed=0)
    assert len(es.history) <= 120
    assert es.score > g.score and max(abs(a - b) for a, b in zip(es.lambdas, target)) < 0.08
    assert all(0.8 <= v <= 1.3 for lam, _ in es.history for v in lam)
    es1 = pm.evolutionary_search(lambda lam: -((lam[0] - 1.0) ** 2), 1, budget=30, seed=1)
    assert abs(es1.lambdas[0] - 1.0) < 0.1
    with pytest.raises(
        ValueError, match=r"bounds must satisfy 0 < lower < upper, got \(1.0, 0.5\)"
    ):
        pm.evolutionary_search(objective, 3, bounds=(1.0, 0.5))
    with pytest.raises(ValueError, match="optimizer must be 'cma' or 'nevergrad', got 'sgd'"):
        pm.evolutionary_search(objective, 3, optimizer="sgd")
    with pytest.raises(
        ValueError, match="grid must be a non-empty sequence of positive finite numbers"
    ):
        pm.grid_search(objective, 3, [])


def test_public_api_and_registry() -> None:
    for name in pm.__all__:
        assert getattr(pm, name) is not None
    from pcb_merge._method import METHOD

    assert METHOD.name == "pcb-merge" and METHOD.arxiv == "2410.02396"


def test_readme_blocks_run() -> None:
    run_readme_blocks(Path(__file__).parents[1] / "README.md")


# NGOpt hands scipy's COBYLA a stopping radius it rejects (and replaces): third-party noise
@pytest.mark.filterwarnings("ignore:COBYLA:UserWarning")
def test_evolutionary_search_with_nevergrad() -> None:
    """The official optimizer (nevergrad's NGOpt, the extra ``pcb-merge[nevergrad]``): seeded,
    within the bounds and the budget, close to the optimum of a quadratic validation score."""
    pytest.importorskip("nevergrad", reason="the nevergrad extra is part of the test group")
    target = [1.1, 0.9, 1.25]

    def objective(lam: list[float]) -> float:
        return -sum((a - b) ** 2 for a, b in zip(lam, target))

    a = pm.evolutionary_search(objective, 3, budget=100, optimizer="nevergrad", seed=3)
    b = pm.evolutionary_search(objective, 3, budget=100, optimizer="nevergrad", seed=3)
    assert a.lambdas == b.lambdas and [h[0] for h in a.history] == [h[0] for h in b.history]
    assert len(a.history) <= 100
    assert all(0.8 <= v <= 1.3 for lam, _ in a.history for v in lam)
    assert max(abs(x - t) for x, t in zip(a.lambdas, target)) < 0.08
    assert a.score > objective([1.0, 1.0, 1.0])

"""Every method and PCB variant against the dense reference in float64, both scopes, odd sizes."""

from __future__ import annotations

import pcb_merge as pm
import pytest
import torch
from _reference import ref_pcb, ref_ties
from pcb_merge import functional as F

SHAPES = {"enc.weight": (17, 29), "enc.bias": (17,), "dec.weight": (3, 7, 11), "head": (5, 5)}


def make_problem(
    n: int, scale: float, seed: int
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    base = {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in SHAPES.items()}
    base["step"] = torch.tensor([7], dtype=torch.int64)
    models = []
    for _ in range(n):
        m = {
            k: v + scale * torch.randn(v.shape, generator=g, dtype=torch.float64)
            for k, v in base.items()
            if k != "step"
        }
        m["step"] = torch.tensor([9], dtype=torch.int64)
        models.append(m)
    return base, models


def flat(sd: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    return torch.cat([sd[k].reshape(-1) for k in keys])


KEYS = sorted(SHAPES)


@pytest.mark.parametrize("inter", ["sum", "normalized", "pairwise"])
@pytest.mark.parametrize(("n", "scale"), [(2, 1e-4), (3, 1e-1), (8, 1e-1), (3, 3.0)])
@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.37])
def test_pcb_global_equals_reference(inter: str, n: int, scale: float, ratio: float) -> None:
    base, models = make_problem(n, scale, seed=n)
    lam = torch.linspace(0.7, 1.4, n, dtype=torch.float64)
    ref, _, _ = ref_pcb(
        torch.stack([flat(m, KEYS) - flat(base, KEYS) for m in models]), ratio, 0.01, inter, lam
    )
    out = pm.pcb(
        base,
        models,
        scope="global",
        ratio=ratio,
        inter=inter,
        lambdas=lam.tolist(),
        compute_dtype=torch.float64,
    )
    torch.testing.assert_close(flat(out, KEYS) - flat(base, KEYS), ref, rtol=1e-6, atol=1e-12)
    assert torch.equal(out["step"], base["step"])  # non-float copied from the base


@pytest.mark.parametrize("inter", ["sum", "normalized", "pairwise"])
def test_pcb_tensor_scope_equals_reference_per_tensor(inter: str) -> None:
    base, models = make_problem(3, 0.1, seed=1)
    out = pm.pcb(
        base,
        models,
        scope="tensor",
        ratio=0.2,
        outlier=0.05,
        inter=inter,
        lambdas=1.3,
        compute_dtype=torch.float64,
    )
    for k in KEYS:
        tv = torch.stack([m[k].reshape(-1) - base[k].reshape(-1) for m in models])
        ref, _, _ = ref_pcb(tv, 0.2, 0.05, inter, torch.full((3,), 1.3, dtype=torch.float64))
        torch.testing.assert_close((out[k] - base[k]).reshape(-1), ref, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("n", [2, 3, 8])
def test_ties_global_equals_reference(density: float, n: int) -> None:
    base, models = make_problem(n, 0.1, seed=10 + n)
    lam = torch.linspace(0.5, 1.5, n, dtype=torch.float64)
    ref = ref_ties(torch.stack([flat(m, KEYS) - flat(base, KEYS) for m in models]), density, lam)
    out = pm.ties(
        base,
        models,
        scope="global",
        density=density,
        lambdas=lam.tolist(),
        compute_dtype=torch.float64,
    )
    torch.testing.assert_close(flat(out, KEYS) - flat(base, KEYS), ref, rtol=1e-6, atol=1e-12)


def test_ties_tensor_scope_equals_reference_per_tensor() -> None:
    base, models = make_problem(3, 0.1, seed=5)
    out = pm.ties(
        base, models, scope="tensor", density=0.3, lambdas=0.9, compute_dtype=torch.float64
    )
    for k in KEYS:
        tv = torch.stack([m[k].reshape(-1) - base[k].reshape(-1) for m in models])
        ref = ref_ties(tv, 0.3, torch.full((3,), 0.9, dtype=torch.float64))
        torch.testing.assert_close((out[k] - base[k]).reshape(-1), ref, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("scope", ["global", "tensor"])
def test_task_arithmetic_and_dare_closed_form(scope: str) -> None:
    base, models = make_problem(3, 0.1, seed=2)
    lam = [0.2, 0.5, 0.9]
    ta = pm.task_arithmetic(base, models, lambdas=lam, scope=scope, compute_dtype=torch.float64)
    dr = pm.dare(base, models, p=0.7, seed=4, lambdas=lam, scope=scope, compute_dtype=torch.float64)
    for k in KEYS:
        exp = base[k] + sum(lam[i] * (models[i][k] - base[k]) for i in range(3))
        torch.testing.assert_close(ta[k], exp, rtol=1e-12, atol=1e-12)
        masks = [F.dare_mask(SHAPES[k], 0.7, seed=4, key=k, task=i) for i in range(3)]
        exp_d = base[k] + sum(
            lam[i] * masks[i].double() * (models[i][k] - base[k]) / 0.3 for i in range(3)
        )
        torch.testing.assert_close(dr[k], exp_d, rtol=1e-12, atol=1e-12)


def test_dare_drop_rate_and_seed_independence_of_order() -> None:
    mask = F.dare_mask((200_003,), 0.9, seed=0, key="w", task=0)
    assert abs(mask.double().mean().item() - 0.1) < 0.005
    assert torch.equal(mask, F.dare_mask((200_003,), 0.9, seed=0, key="w", task=0))
    assert not torch.equal(mask, F.dare_mask((200_003,), 0.9, seed=0, key="w", task=1))
    base, models = make_problem(2, 0.1, seed=3)
    a = pm.dare(base, models, p=0.5, seed=1)
    rev = {k: base[k] for k in reversed(list(base))}
    b = pm.dare(rev, [{k: m[k] for k in reversed(list(m))} for m in models], p=0.5, seed=1)
    for k in a:
        assert torch.equal(a[k], b[k])


def test_large_odd_row_index_rules() -> None:
    """D = 100 003 exercises the int(d*(1-r)) rounding of the official clamp."""
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.zeros(100_003, dtype=torch.float64)}
    models = [
        {"w": torch.randn(100_003, generator=g, dtype=torch.float64) * 1e-3} for _ in range(3)
    ]
    tv = torch.stack([m["w"] for m in models])
    for inter in ("sum", "pairwise"):
        ref, _, scale = ref_pcb(tv, 0.05, 0.01, inter, torch.ones(3, dtype=torch.float64))
        out = pm.pcb(
            base, models, scope="global", ratio=0.05, inter=inter, compute_dtype=torch.float64
        )
        torch.testing.assert_close(out["w"], ref, rtol=1e-6, atol=1e-15)
        # kept count: strictly above sorted[int(d*(1-r))] = d - 1 - 95002 = 5000 per row
        assert (scale > 0).sum(dim=1).tolist() == [5000, 5000, 5000]


def test_hand_checked_tiny_case() -> None:
    """n=2, d=6, outlier 0: indices lo=int(0)=0, hi=int(6*1-1)=5, q=int(6*0.5)=3."""
    assert F.pcb_rank_indices(6, 0.5, 0.0) == (0, 5, 3)
    assert F.pcb_rank_indices(10, 0.1, 0.01) == (0, 8, 9)
    assert F.pcb_rank_indices(100_003, 0.05, 0.01) == (1000, 99001, 95002)
    tv = torch.tensor(
        [[1.0, -2.0, 3.0, 0.5, -0.5, 4.0], [1.0, 2.0, -3.0, 0.5, 0.5, 2.0]], dtype=torch.float64
    )
    ref, _c, s = ref_pcb(tv, 0.5, 0.0, "sum", torch.ones(2, dtype=torch.float64))
    base = {"w": torch.zeros(6, dtype=torch.float64)}
    out = pm.pcb(
        base,
        [{"w": tv[0]}, {"w": tv[1]}],
        scope="global",
        ratio=0.5,
        outlier=0.0,
        compute_dtype=torch.float64,
    )
    torch.testing.assert_close(out["w"], ref)
    # conflicting coordinates 1 and 2 (opposite signs, equal |τ| at 2) score tanh(<=0): dropped there
    assert s[0, 2] == 0 and s[1, 2] == 0
    assert (s > 0).sum().item() == 4
    # ties: k = 6 - int(6*0.5) = 3rd smallest |τ| kept with ties
    assert F.ties_rank(6, 0.5) == 2
    torch.testing.assert_close(
        pm.ties(
            base,
            [{"w": tv[0]}, {"w": tv[1]}],
            scope="global",
            density=0.5,
            compute_dtype=torch.float64,
        )["w"],
        ref_ties(tv, 0.5, torch.ones(2, dtype=torch.float64)),
    )


def test_float32_storage_and_compute_close_to_float64() -> None:
    base, models = make_problem(3, 0.1, seed=8)
    b32 = {k: v.float() if v.is_floating_point() else v for k, v in base.items()}
    m32 = [{k: v.float() if v.is_floating_point() else v for k, v in m.items()} for m in models]
    o32 = pm.pcb(b32, m32, scope="global", compute_dtype=torch.float32)
    o64 = pm.pcb(b32, m32, scope="global", compute_dtype=torch.float64)
    assert o32["enc.weight"].dtype == torch.float32
    torch.testing.assert_close(o32["enc.weight"], o64["enc.weight"], rtol=1e-4, atol=1e-5)
    bf = {k: v.bfloat16() if v.is_floating_point() else v for k, v in base.items()}
    mf = [{k: v.bfloat16() if v.is_floating_point() else v for k, v in m.items()} for m in models]
    out = pm.pcb(bf, mf, scope="global", out_dtype="float32")
    assert out["enc.weight"].dtype == torch.float32 and torch.isfinite(out["enc.weight"]).all()


def test_dare_mask_pieces_are_one_uniform_stream() -> None:
    """The mask is drawn in pieces of DARE_PIECE uniforms so that streamed merges can draw it
    chunk by chunk; for torch's CPU generator that is the same stream as one draw of the whole
    tensor (the masks of earlier versions), and the streamed DARE delta equals the in-memory one."""
    shape = (3, 2 * F.DARE_PIECE + 12_345)
    gen = F.dare_generator(7, "w", 1)
    one_draw = torch.rand(shape, generator=gen, dtype=torch.float64) >= 0.3
    assert torch.equal(F.dare_mask(shape, 0.3, seed=7, key="w", task=1), one_draw)
    assert F.dare_mask((0, 4), 0.3, seed=7, key="w", task=1).shape == (0, 4)
    from pcb_merge._engine import Block, Dare

    g = torch.Generator().manual_seed(2)
    tv = torch.randn(2, 3 * F.DARE_PIECE + 77, generator=g)
    block = Block("w", (tv.shape[1],), torch.zeros(tv.shape[1]), tv)
    impl = Dare(0.6, True, 9)
    lam = torch.tensor([1.0, 0.7], dtype=torch.float64)
    full = impl.delta(block, {}, lam)
    streamed = impl.delta_(block, {}, lam, torch.empty(tv.shape[1]))
    assert torch.equal(full, streamed)

"""One-pass bracketed selection (a seeded sample brackets each rank; one pass counts and collects)
gives exactly the two-pass radix values, bit for bit, and falls back to them when it misses."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pcb_merge as pm
import pytest
import torch
from pcb_merge import _engine, _select
from pcb_merge._select import InMemorySelector, RadixSelector
from pcb_merge.checkpoints import SafetensorsCheckpoint
from safetensors.torch import save_file
from test_parity import make_problem


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).view(torch.int32)


def _data() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 7000, generator=g)
    x[0, :1500] = 0.0
    x[0, 1500:1600] = -0.0  # radix order: -0.0 < +0.0
    x[1, ::3] = -0.25  # heavy ties
    x[2, :4] = float("inf")
    x[2, 4:8] = -3e38
    x[2, 8:3000] = 1.5  # a value holding 40% of the row
    return x


RANKS = [0, 3, 4, 1499, 1500, 1599, 1600, 3000, 5000, 6999]


def _blocks(x: torch.Tensor) -> list[torch.Tensor]:
    return [x[:, :1234], x[:, 1234:1234], x[:, 1234:4000], x[:, 4000:]]


def _two_pass(x: torch.Tensor, ranks: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    blocks = _blocks(x)
    sel = RadixSelector()
    vals, top = sel.select(lambda: iter(blocks), ranks, x.shape[0])
    assert sel.passes == 2
    return vals, top


@pytest.mark.parametrize("limit", [1 << 20, 64])
@pytest.mark.parametrize("s", [7000, 512, 64])
def test_bracket_equals_two_pass_radix(s: int, limit: int) -> None:
    """A large gather limit opens every bracket to the ends of the key range (all collected);
    a small one keeps narrow brackets, with negative bounds (converted keys), ties and ±0."""
    x = _data()
    d = x.shape[1]
    pos = torch.randint(0, d, (s,), generator=torch.Generator().manual_seed(s))
    blocks = _blocks(x)
    sel = RadixSelector(gather_limit=limit)
    vals, top = sel.select(lambda: iter(blocks), RANKS, 3, sample=x[:, pos], d=d)
    ref, ref_top = _two_pass(x, RANKS)
    assert torch.equal(_bits(vals), _bits(ref)) and torch.equal(top, ref_top)
    mem, _ = InMemorySelector().select(lambda: iter(blocks), RANKS, 3)
    assert torch.equal(vals, mem)
    if s == d:  # the sample is a permutation-with-repeats of the data: brackets are tight
        assert sel.bracket_misses == 0 and sel.passes == 1


def test_bracket_miss_falls_back_exactly() -> None:
    x = _data()
    blocks = _blocks(x)
    wrong = torch.full((3, 100), 1e30)  # a sample that brackets nothing
    sel = RadixSelector(gather_limit=64)  # narrow brackets: [1e30, 1e30] for the middle ranks
    vals, top = sel.select(lambda: iter(blocks), [3000, 5000], 3, sample=wrong, d=x.shape[1])
    ref, ref_top = _two_pass(x, [3000, 5000])
    assert torch.equal(_bits(vals), _bits(ref)) and torch.equal(top, ref_top)
    assert sel.bracket_misses == 1 and sel.passes == 3
    # with the default limit the extreme ranks' brackets open to the ends: still exact
    sel = RadixSelector()
    vals, top = sel.select(lambda: iter(blocks), RANKS, 3, sample=wrong, d=x.shape[1])
    ref, ref_top = _two_pass(x, RANKS)
    assert torch.equal(_bits(vals), _bits(ref)) and torch.equal(top, ref_top)


@pytest.mark.parametrize("signed", [False, True])
def test_bracket_two_tails_one_mask(signed: bool) -> None:
    """The PCB outlier ranks (0.01% from each end): both tails collected by one mask, one pass,
    the same bits as the two-pass route; with signed values the keys are converted first."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 200_000, generator=g)
    x = x if signed else x.abs()
    d = x.shape[1]
    _assert_one_pass_exact(x, [int(d * 1e-4), int(d * (1 - 1e-4) - 1)], cut=70_001, seed=6)


def _assert_one_pass_exact(x: torch.Tensor, ranks: list[int], *, cut: int, seed: int) -> None:
    """A 5000-column sample and a small gather limit settle ``ranks`` of the two blocks
    ``x[:, :cut]``, ``x[:, cut:]`` in one pass, with the two-pass radix route's bits."""
    d = x.shape[1]
    blocks = [x[:, :cut], x[:, cut:]]
    pos = torch.randint(0, d, (5000,), generator=torch.Generator().manual_seed(seed))
    sel = RadixSelector(gather_limit=1024)
    vals, top = sel.select(lambda: iter(blocks), ranks, x.shape[0], sample=x[:, pos], d=d)
    ref, ref_top = RadixSelector().select(lambda: iter(blocks), ranks, x.shape[0])
    assert torch.equal(_bits(vals), _bits(ref)) and torch.equal(top, ref_top)
    assert sel.passes == 1 and sel.bracket_misses == 0


def test_bracket_gather_cap_falls_back_exactly() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 50_000, generator=g)
    blocks = [x[:, :20_000], x[:, 20_000:]]
    sample = x[:, :40]  # wide brackets, far more than cap = max(1, 2·40) values inside
    sel = RadixSelector(gather_limit=1)
    vals, top = sel.select(lambda: iter(blocks), [25_000], 2, sample=sample, d=50_000)
    ref, ref_top = RadixSelector().select(lambda: iter(blocks), [25_000], 2)
    assert torch.equal(_bits(vals), _bits(ref)) and torch.equal(top, ref_top)
    assert sel.bracket_misses == 1


def test_bracket_degenerate_and_sentinel_ends() -> None:
    x = torch.zeros(2, 1000)
    x[0, 990:] = torch.arange(1, 11, dtype=torch.float32)
    x[1, :] = 2.0
    ranks = [0, 500, 989, 990, 999]
    sel = RadixSelector()
    blocks = [x]
    vals, top = sel.select(lambda: iter(blocks), ranks, 2, sample=x, d=1000)
    ref, ref_top = _two_pass(x, ranks)
    assert torch.equal(_bits(vals), _bits(ref)) and torch.equal(top, ref_top)
    assert sel.passes == 1 and sel.bracket_misses == 0


def test_order_keys32_total_order_and_involution() -> None:
    v = torch.tensor(
        [-float("inf"), -3e38, -1.0, -1e-45, -0.0, 0.0, 1e-45, 1.0, 3e38, float("inf")]
    )
    bits = v.view(torch.int32).numpy()
    keys = _select.order_keys32(bits)
    assert (np.diff(keys.astype(np.int64)) > 0).all()
    assert (_select.order_keys32(keys) == bits).all()
    for b, k in zip(bits, keys):
        assert np.float32(_select._key32_to_float(int(k))).view(np.int32) == b


def test_bracket_bounds() -> None:
    for d, s in [(10, 10), (10**6, 1 << 16), (4 * 10**8, 1 << 22)]:
        for r in (0, d // 100, d // 2, d - 1):
            a, b = _select._bracket(r, d, s)
            assert a < b and a <= r * s / d <= b


def test_sample_files_equals_blocks(tmp_path: Path) -> None:
    base, models = make_problem(2, 0.1, seed=7)
    base = {k: v.bfloat16() if v.is_floating_point() else v for k, v in base.items()}
    models = [
        {k: v.bfloat16() if v.is_floating_point() else v for k, v in m.items()} for m in models
    ]
    paths = []
    for i, sd in enumerate([base, *models]):
        paths.append(tmp_path / f"m{i}.safetensors")
        save_file(sd, paths[-1])
    cks = [SafetensorsCheckpoint(p) for p in paths]
    keys = [k for k in cks[0] if cks[0].spec(k)[1].is_floating_point]
    tv = torch.cat([_engine.load_block(k, cks[0], cks[1:], torch.float32).tv for k in keys], dim=1)
    d = tv.shape[1]
    got = _engine._sample_files(keys, d, cks[0], cks[1:], torch.float32, _engine._Pool())
    assert torch.equal(got, tv[:, _engine.sample_positions(d)])
    assert _engine.sample_size(d) == min(d, 1 << 16)
    assert _engine.sample_size(10**9) == 1 << 22


@pytest.mark.parametrize("d", [1, 7, 65_536, 65_537, 1_000_003, 10**9])
def test_sample_positions_one_per_stratum(d: int) -> None:
    """Stratified: strictly increasing, one position in each of the s equal strata, seeded."""
    pos = _engine.sample_positions(d)
    s = _engine.sample_size(d)
    assert pos.shape == (s,) and torch.equal(pos, _engine.sample_positions(d))
    assert bool((pos[1:] > pos[:-1]).all()) and int(pos[0]) >= 0 and int(pos[-1]) < d
    k = torch.arange(s, dtype=torch.int64)
    assert bool(((pos >= (k * d) // s) & (pos < ((k + 1) * d) // s)).all())
    if s == d:
        assert torch.equal(pos, torch.arange(d))


@pytest.mark.parametrize("method", ["pcb", "ties"])
def test_global_stats_one_pass_per_statistic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Streaming global PCB/TIES use the bracket (one pass per statistic, no fallback) and equal
    the in-memory merge bit for bit."""
    base, models = make_problem(3, 0.1, seed=11)
    paths = []
    for i, sd in enumerate([base, *models]):
        paths.append(tmp_path / f"m{i}.safetensors")
        save_file({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, paths[-1])
    made: list[RadixSelector] = []

    class Spy(RadixSelector):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            made.append(self)

    import pcb_merge.streaming as streaming

    monkeypatch.setattr(streaming, "RadixSelector", Spy)
    params: dict[str, Any] = {"ratio": 0.2} if method == "pcb" else {"density": 0.3}
    out = pm.merge_files(
        method, paths[0], paths[1:], tmp_path / "out", scope="global", out_dtype="float32", **params
    )
    sel = made[0]
    assert sel.bracket_misses == 0
    assert sel.passes == (2 if method == "pcb" else 1)
    f32 = [
        {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        for sd in [base, *models]
    ]
    fn = pm.pcb if method == "pcb" else pm.ties
    mem = fn(f32[0], f32[1:], scope="global", **params)
    got = SafetensorsCheckpoint(out)
    for k, v in mem.items():
        assert torch.equal(got.load(k), v), k


@pytest.mark.parametrize("scope", ["tensor", "global"])
@pytest.mark.parametrize(
    ("method", "params"), [("pcb", {"ratio": 0.5}), ("ties", {"density": 0.5})]
)
def test_empty_and_one_element_tensors(
    tmp_path: Path, scope: str, method: str, params: dict[str, Any]
) -> None:
    """Empty sample (a 0-element tensor) and one-element tensors (sentinel brackets) stream fine
    and equal the in-memory merge."""
    g = torch.Generator().manual_seed(0)
    base = {"e": torch.zeros(0, 3), "one": torch.randn(1, generator=g), "w": torch.randn(40, 3)}
    models = [{k: v + torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(2)]
    paths = []
    for i, sd in enumerate([base, *models]):
        paths.append(tmp_path / f"m{i}.safetensors")
        save_file(sd, paths[-1])
    out = pm.merge_files(
        method, paths[0], paths[1:], tmp_path / "o.safetensors", scope=scope, **params
    )
    fn = pm.pcb if method == "pcb" else pm.ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mem = fn(base, models, scope=scope, **params)  # in memory, the empty tensor included
    got = SafetensorsCheckpoint(out)
    assert got.load("e").shape == (0, 3) and mem["e"].shape == (0, 3)
    assert set(mem) == set(base)
    for k, v in mem.items():
        assert torch.equal(got.load(k), v), k


@pytest.mark.parametrize("signed", [False, True])
def test_bracket_heavy_ties_are_counted(signed: bool) -> None:
    """Bracket ends on values that hold a large share of the row (exact zeros, a repeated value)
    are counted, not collected: one pass, no gather overflow, the two-pass radix bits."""
    g = torch.Generator().manual_seed(8)
    d = 200_000
    x = torch.cat(
        [
            torch.zeros(60_000),
            torch.full((60_000,), 1.5),
            torch.randn(80_000, generator=g).abs() + 2,
        ]
    )
    x = torch.stack([x[torch.randperm(d, generator=g)] for _ in range(2)])
    if signed:
        x[1] = -x[1]
    ranks = [int(d * 1e-4), int(d * 0.45), d - 1 - int(d * 1e-4)]
    _assert_one_pass_exact(x, ranks, cut=90_001, seed=9)

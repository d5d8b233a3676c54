# mypy: disable-error-code="no-untyped-call,index,call-overload,arg-type,misc,operator"
"""The flattened small-tensor path of the multi-tensor AdamP step and its persistent flat moments.

The reference is always the per-tensor loop (``foreach=False``), which the parity tests tie to
the official code.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from adamp_opt import AdamP, _batched
from adamp_opt import functional as F
from torch import nn

SHAPES = [(6,), (5, 7), (3, 7), (4,), (4, 2, 3, 3), (6, 4), (2, 7), (8, 2, 3, 3), (3, 1), (1,)]


@pytest.fixture(autouse=True)
def _fresh_layouts() -> Any:
    """The cached layouts depend on SMALL_NUMEL, which some tests change."""
    _batched._layout.cache_clear()
    _batched._flat_layout.cache_clear()
    yield
    _batched._layout.cache_clear()
    _batched._flat_layout.cache_clear()


def _tensors(seed: int, shapes: list[tuple[int, ...]] = SHAPES) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _foreach_equals_loop(
    shapes: list[tuple[int, ...]], kw: dict[str, Any], *, zero_grad: int
) -> list[list[Any]]:
    """Four functional steps with ``foreach=True`` and ``False`` from the same start (tensor 4
    channels_last, gradient ``zero_grad`` all zero: not called invariant); parameters, moments,
    step counts and per-step decisions must agree. Returns the foreach run's decisions."""
    runs = []
    for foreach in (True, False):
        params = _tensors(0, shapes)
        params[4] = params[4].contiguous(memory_format=torch.channels_last)
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        steps = [torch.tensor(0.0, dtype=torch.float64) for _ in params]
        decisions = []
        for t in range(4):
            grads = _tensors(10 + t, shapes)
            grads[zero_grad] = torch.zeros_like(grads[zero_grad])
            decisions.append(F.adamp(params, grads, m, v, steps, foreach=foreach, **kw))
        runs.append((params, m, v, steps, decisions))
    for xs, ys in zip(runs[0][:4], runs[1][:4], strict=True):
        for x, y in zip(xs, ys, strict=True):
            _close(x, y)
    for da, db in zip(runs[0][4], runs[1][4], strict=True):
        assert [None if d is None else int(d) for d in da] == [
            None if d is None else int(d) for d in db
        ]
    return runs[0][4]


@pytest.mark.parametrize("projection", ["auto", "channel", "layer", "off"])
@pytest.mark.parametrize("channel_dim", [0, 1])
@pytest.mark.parametrize(("nesterov", "maximize"), [(False, False), (True, True)])
@pytest.mark.parametrize("small_numel", [0, 16384])
def test_functional_foreach_equals_the_loop(
    projection: str,
    channel_dim: int,
    nesterov: bool,
    maximize: bool,
    small_numel: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No cache (the functional API): moments are flattened and copied back every step, and
    large tensors allocate their temporaries (no scratch buffer)."""
    monkeypatch.setattr(_batched, "SMALL_NUMEL", small_numel)
    shapes = [s for s in SHAPES if channel_dim < len(s) or len(s) == 1]
    kw: dict[str, Any] = {
        "lr": 1e-2, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.1, "delta": 0.5,
        "wd_ratio": 0.1, "nesterov": nesterov, "maximize": maximize, "projection": projection,
        "channel_dim": channel_dim,
    }  # fmt: skip
    decisions = _foreach_equals_loop(shapes, kw, zero_grad=1)
    if projection != "off":
        assert all(any(d is not None for d in step) for step in decisions)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 36, 4), nn.LayerNorm(4), nn.Linear(4, 3, bias=False),
    ).double()  # fmt: skip


def _batch(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + t)
    return torch.randn(6, 3, 8, 8, generator=gen, dtype=torch.float64), torch.randint(
        0, 3, (6,), generator=gen
    )


def _big_batch(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _batch(t)
    return torch.cat([x, x.flip(0)]), torch.cat([y, y.flip(0)])


def _step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    t: int,
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]] = _batch,
    keep: Callable[[str], bool] | None = None,
) -> None:
    opt.zero_grad(set_to_none=True)
    x, y = batch(t)
    nn.functional.cross_entropy(model(x), y).backward()
    if keep is not None:  # parameters without a gradient this step
        for name, p in model.named_parameters():
            if not keep(name):
                p.grad = None
    opt.step()


def _assert_same(a: nn.Module, oa: AdamP, b: nn.Module, ob: AdamP) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        _close(p, q)
        if p in oa.state or q in ob.state:
            for key in ("exp_avg", "exp_avg_sq", "step"):
                _close(oa.state[p][key], ob.state[q][key])
    assert oa.projection_decisions() == ob.projection_decisions()


def _pair(
    model: Callable[[], nn.Module] | None = None, **kw: Any
) -> tuple[nn.Module, AdamP, nn.Module, AdamP]:
    """A model, its deep copy, and a foreach / per-tensor AdamP on each (default: ``_model``)."""
    kw = {"lr": 1e-2, "weight_decay": 1e-2} | kw
    a = (model or _model)()
    b = copy.deepcopy(a)
    return (
        a,
        AdamP(a.parameters(), foreach=True, **kw),
        b,
        AdamP(b.parameters(), foreach=False, **kw),
    )


def test_small_moments_are_views_into_one_persistent_buffer() -> None:
    a, oa, b, ob = _pair()
    ptrs = []
    for t in range(3):
        _step(a, oa, t)
        _step(b, ob, t)
        storages = {
            oa.state[p][key].untyped_storage().data_ptr()
            for p in a.parameters()
            for key in ("exp_avg", "exp_avg_sq")
        }
        assert len(storages) == 2  # one buffer for each moment
        ptrs.append(storages)
    assert ptrs[0] == ptrs[1] == ptrs[2]  # reused across steps, not rebuilt
    _assert_same(a, oa, b, ob)
    # writing into the state (a view) is seen by the next step, as with ordinary state tensors
    for o, m in ((oa, a), (ob, b)):
        o.state[m[0].weight]["exp_avg"].mul_(0.5)
    _step(a, oa, 3)
    _step(b, ob, 3)
    _assert_same(a, oa, b, ob)


def _round_trip(sd: dict[str, Any], how: str) -> dict[str, Any]:
    """The state dict as it comes back from ``how``: the same object, a deep copy, or a
    ``torch.save``/``torch.load(weights_only=True)`` round trip."""
    if how == "deepcopy":
        return copy.deepcopy(sd)
    if how == "torch.save":
        buf = io.BytesIO()
        torch.save(sd, buf)
        buf.seek(0)
        return torch.load(buf, weights_only=True)  # type: ignore[no-any-return]
    return sd


@pytest.mark.parametrize("how", ["same-object", "deepcopy", "torch.save"])
def test_state_dict_round_trip_rebuilds_independent_buffers(how: str) -> None:
    a, oa, b, ob = _pair(nesterov=True)
    for t in range(3):
        _step(a, oa, t)
        _step(b, ob, t)
    sd = _round_trip(oa.state_dict(), how)
    c = copy.deepcopy(a)
    oc = AdamP(c.parameters(), lr=1.0)
    oc.load_state_dict(sd)
    assert oc.param_groups[0]["lr"] == 1e-2
    # (the CPU step counters are shared after a same-object load, as in torch.optim)
    before = {k: oa.state[a[0].weight][k].clone() for k in ("exp_avg", "exp_avg_sq")}
    for t in range(3, 6):
        _step(c, oc, t)
        _step(b, ob, t)
    _assert_same(c, oc, b, ob)
    # stepping the loaded copy did not write into the original optimizer's buffers
    for k, v in before.items():
        assert torch.equal(oa.state[a[0].weight][k], v)
    if how == "same-object":
        return  # the original's step counters were advanced through the shared objects
    # the original continues as if nothing happened; loading its own state dict is a no-op
    oa.load_state_dict(oa.state_dict())
    a2, oa2 = copy.deepcopy((a, oa))  # an optimizer copy starts without the cache
    assert oa2.__dict__.get("_flat_caches") is None
    for t in range(3, 6):
        _step(a, oa, t)
    _assert_same(a, oa, b, ob)
    for t in range(3, 6):
        _step(a2, oa2, t)
    _assert_same(a2, oa2, b, ob)


def test_missing_gradients_replaced_state_and_mixed_step_counts() -> None:
    """Rebuilds on every change of the stepped set; two step counts in a group coexist."""
    a, oa, b, ob = _pair()
    schedule: list[Callable[[str], bool]] = [
        lambda n: n.startswith("0."),  # only the conv weight: the others start later
        lambda n: True,
        lambda n: n != "1.bias",
        lambda n: True,
        lambda n: True,
    ]
    for t, keep in enumerate(schedule):
        _step(a, oa, t, keep=keep)
        _step(b, ob, t, keep=keep)
        _assert_same(a, oa, b, ob)
        # one flat buffer per step count (the bias skipped at t=2 lags behind), stale ones dropped
        stepped = {int(oa.state[p]["step"]) for n, p in a.named_parameters() if keep(n)}
        entries = [e for e in oa._flat_cache(0).values() if isinstance(e, _batched._FlatState)]
        assert len(entries) == len(stepped)
    # a state entry replaced by the user is read, not overwritten by a stale buffer
    for o, m in ((oa, a), (ob, b)):
        o.state[m[4].weight]["exp_avg_sq"] = o.state[m[4].weight]["exp_avg_sq"] * 2.0
    for t in range(5, 7):
        _step(a, oa, t)
        _step(b, ob, t)
    _assert_same(a, oa, b, ob)


@pytest.mark.parametrize("small_numel", [0, 300, 10**9])
@pytest.mark.parametrize(("nesterov", "channels_last"), [(False, False), (True, True)])
def test_small_and_large_tensors_in_one_group(
    small_numel: int, nesterov: bool, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some tensors on the flat path, the others one at a time (in the scratch buffer)."""
    monkeypatch.setattr(_batched, "SMALL_NUMEL", small_numel)
    a, oa, b, ob = _pair(projection="auto", maximize=True, nesterov=nesterov)
    if channels_last:  # the large-tensor statistics fall back to row_statistics
        a.to(memory_format=torch.channels_last)
        assert not a[0].weight.is_contiguous()
    for t in range(4):
        _step(a, oa, t)
        _step(b, ob, t)
    _assert_same(a, oa, b, ob)


def test_projection_off_group_flattens_everything() -> None:
    a, oa, b, ob = _pair(projection="off")
    for t in range(3):
        _step(a, oa, t)
        _step(b, ob, t)
    _assert_same(a, oa, b, ob)
    assert set(oa.projection_decisions().values()) == {"none"}


# --- device routing (the GPU arrangement), forced on the CPU -------------------------------------

BIG_SHAPES = [(6,), (60, 8), (3, 7), (4,), (4, 2, 3, 3), (300,), (6, 4), (12, 5, 3, 3), (2, 7)]


def _big_model(seed: int = 0) -> nn.Module:
    """conv+BN, Linear+LN and plain tensors; with BUCKET_NUMEL = 400 the conv (540), the first
    Linear (8 * 36 * 20 = 5760) are larger than a bucket, and the rest spans several buckets."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 20, 3, bias=False), nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 8, 1, bias=False),
        nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 20), nn.LayerNorm(20),
        nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 3, bias=False),
    ).double()  # fmt: skip


@pytest.fixture
def device_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tensor on the flat path, in buckets of at most 400 elements; the rows of buckets
    with more than one row length are scaled by one gathered factor per element."""
    monkeypatch.setattr(_batched, "_DEVICE_ROUTING", True)
    monkeypatch.setattr(_batched, "BUCKET_NUMEL", 400)
    monkeypatch.setattr(_batched, "_MAX_ROW_BLOCKS", 1)


def test_chunks_are_bounded_and_keep_the_order() -> None:
    params = [torch.empty(n, device="meta") for n in (100, 250, 60, 900, 10, 390, 20)]
    chunks = _batched._chunks(list(range(7)), params, 400)
    assert chunks == [[0, 1], [2], [3], [4, 5], [6]]
    assert [i for c in chunks for i in c] == list(range(7))


@pytest.mark.usefixtures("device_routing")
@pytest.mark.parametrize("projection", ["auto", "channel", "layer", "off"])
@pytest.mark.parametrize(("nesterov", "maximize"), [(False, False), (True, True)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_device_routing_functional_equals_the_loop(
    projection: str, nesterov: bool, maximize: bool, weight_decay: float
) -> None:
    """No cache: mixed 1-D/2-D/4-D tensors in several buckets, one larger than a bucket."""
    kw: dict[str, Any] = {
        "lr": 1e-2, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": weight_decay,
        "delta": 0.5, "wd_ratio": 0.1, "nesterov": nesterov, "maximize": maximize,
        "projection": projection, "channel_dim": 0,
    }  # fmt: skip
    chunks = _batched._chunks(list(range(len(BIG_SHAPES))), _tensors(0, BIG_SHAPES), 400)
    assert len(chunks) >= 3 and [1] in chunks and [7] in chunks  # (60, 8), (12, 5, 3, 3) alone
    _foreach_equals_loop(BIG_SHAPES, kw, zero_grad=2)


def _big_pair(**kw: Any) -> tuple[nn.Module, AdamP, nn.Module, AdamP]:
    return _pair(_big_model, **kw)


def _flat_entries(opt: AdamP) -> list[Any]:
    return [e for e in opt._flat_cache(0).values() if isinstance(e, _batched._FlatState)]


@pytest.mark.usefixtures("device_routing")
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"nesterov": True, "maximize": True},
        {"weight_decay": 0.0},
        {"projection": "off"},
        {"projection": "layer", "nesterov": True},
    ],
)
def test_device_routing_optimizer_equals_the_loop(
    kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batched, "_MAX_FLAT_STATES", 1)  # more buckets than kept stale entries
    a, oa, b, ob = _big_pair(**kw)
    for t in range(2):
        _step(a, oa, t, _big_batch)
        _step(b, ob, t, _big_batch)
    entries = _flat_entries(oa)
    assert len(entries) >= 4  # one per bucket, all kept
    ptrs = [e.exp_avg.data_ptr() for e in entries]
    for t in range(2, 5):
        _step(a, oa, t, _big_batch)
        _step(b, ob, t, _big_batch)
    # buffers are reused across steps (not rebuilt), and the state entries are their views
    assert [e.exp_avg.data_ptr() for e in _flat_entries(oa)] == ptrs
    for p in a.parameters():
        base = oa.state[p]["exp_avg"].untyped_storage().data_ptr()
        assert base in {e.exp_avg.untyped_storage().data_ptr() for e in entries}
    _assert_same(a, oa, b, ob)
    # one shared scratch buffer for the flattened weights, as large as the largest bucket
    weights = oa._flat_cache(0)["weights"]
    assert len(weights) == 1
    assert next(iter(weights.values())).numel() == max(e.exp_avg.numel() for e in entries)


@pytest.mark.usefixtures("device_routing")
@pytest.mark.parametrize("how", ["same-object", "torch.save"])
def test_device_routing_state_dict_round_trip(how: str) -> None:
    a, oa, b, ob = _big_pair(nesterov=True)
    for t in range(3):
        _step(a, oa, t, _big_batch)
        _step(b, ob, t, _big_batch)
    sd = _round_trip(oa.state_dict(), how)
    c = copy.deepcopy(a)
    oc = AdamP(c.parameters(), lr=1.0)
    oc.load_state_dict(sd)
    before = {k: oa.state[a[0].weight][k].clone() for k in ("exp_avg", "exp_avg_sq")}
    for t in range(3, 6):
        _step(c, oc, t, _big_batch)
        _step(b, ob, t, _big_batch)
    _assert_same(c, oc, b, ob)
    for k, v in before.items():
        assert torch.equal(oa.state[a[0].weight][k], v)
    # the original loads its own state dict (rebuilds its buffers) and goes on unchanged
    if how == "torch.save":
        oa.load_state_dict(oa.state_dict())
        for t in range(3, 6):
            _step(a, oa, t, _big_batch)
        _assert_same(a, oa, b, ob)


@pytest.mark.usefixtures("device_routing")
def test_device_routing_missing_gradients_drop_stale_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_batched, "_MAX_FLAT_STATES", 0)  # drop every entry unused in a step
    a, oa, b, ob = _big_pair()
    schedule: list[Callable[[str], bool]] = [
        lambda n: True,
        lambda n: n != "7.weight",  # the Linear larger than a bucket loses its gradient
        lambda n: n != "7.weight",
        lambda n: not n.startswith("9."),
        lambda n: True,
        lambda n: True,
    ]
    for t, keep in enumerate(schedule):
        _step(a, oa, t, _big_batch, keep)
        _step(b, ob, t, _big_batch, keep)
        _assert_same(a, oa, b, ob)
        # only the buffers of this step's buckets remain, each parameter in at most one
        entries = _flat_entries(oa)
        keys = [e.key for e in entries]
        assert sum(len(k) for k in keys) == len(frozenset().union(*keys))
        stepped = {id(oa.state[p]) for n, p in a.named_parameters() if keep(n)}
        assert frozenset().union(*keys) == stepped

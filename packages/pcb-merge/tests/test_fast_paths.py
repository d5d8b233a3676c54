"""The streaming fast paths (mapped reads, reused buffers, fused chunked kernels, one-reduction
NaN check) give exactly the reference results, including on chunk remainders and bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pcb_merge as pm
import pytest
import torch
from pcb_merge import _engine, _select
from pcb_merge.checkpoints import SafetensorsCheckpoint
from safetensors.torch import save_file
from test_parity import make_problem

CASES = [
    ("task_arithmetic", "tensor", {}),
    ("task_arithmetic", "global", {}),
    ("dare", "tensor", {"p": 0.5, "seed": 2}),
    ("ties", "tensor", {"density": 0.3}),
    ("ties", "global", {"density": 0.3}),
    ("pcb", "tensor", {"ratio": 0.2}),
    ("pcb", "global", {"ratio": 0.2, "inter": "normalized"}),
    ("pcb", "global", {"ratio": 0.1}),
]


def _bf16(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.bfloat16() if v.is_floating_point() else v for k, v in sd.items()}


@pytest.fixture(scope="module")
def bf16_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, list[Path]]:
    base, models = make_problem(3, 0.1, seed=5)
    base, models = _bf16(base), [_bf16(m) for m in models]
    root = tmp_path_factory.mktemp("bf16")
    paths = []
    for i, sd in enumerate([base, *models]):
        paths.append(root / f"m{i}.safetensors")
        save_file(sd, paths[-1])
    return base, models, paths


@pytest.mark.parametrize(("method", "scope", "params"), CASES)
@pytest.mark.parametrize("cols", [5, 1 << 17])
def test_bf16_files_bitwise_equal_in_memory(
    bf16_files: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    scope: str,
    params: dict[str, Any],
    cols: int,
) -> None:
    """bfloat16 files, float32 compute: the streamed output equals the in-memory merge bit for
    bit, also when tiny chunks force many chunk boundaries and a remainder."""
    monkeypatch.setattr(_engine, "_FUSED_COLS", cols)
    monkeypatch.setattr(_engine, "_COLS", cols)
    base, models, paths = bf16_files
    lam = [1.0, 1.1, 1.3]  # a row with λ = 1 (not multiplied) and rows with λ != 1
    mem = getattr(pm, method)(base, models, scope=scope, lambdas=lam, **params)
    out = pm.merge_files(
        method, paths[0], paths[1:], tmp_path / "o", scope=scope, lambdas=lam, **params
    )
    got = SafetensorsCheckpoint(out)
    assert sorted(got.keys()) == sorted(mem)
    for k, v in mem.items():
        assert got.spec(k)[1] == v.dtype
        assert torch.equal(got.load(k).view(torch.uint8), v.contiguous().view(torch.uint8)), k


@pytest.mark.parametrize(
    ("method", "scope"),
    [("task_arithmetic", "tensor"), ("ties", "tensor"), ("ties", "global"), ("pcb", "global")],
)
@pytest.mark.parametrize("who", [0, 2])
@pytest.mark.parametrize("where", [0, -1])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_file_input_raises(
    bf16_files: Any, tmp_path: Path, method: str, scope: str, who: int, where: int, bad: float
) -> None:
    """The fused task-arithmetic path checks its output, the chunked global passes their task
    vectors, and then both name the bad input exactly like the per-input check of the other
    paths."""
    base, models, _ = bf16_files
    sds = [dict(base), *[dict(m) for m in models]]
    key = next(k for k, v in base.items() if v.is_floating_point() and v.numel() > 1)
    t = sds[who][key].clone().reshape(-1)
    t[where] = bad
    sds[who][key] = t.reshape(base[key].shape)
    paths = []
    for i, sd in enumerate(sds):
        paths.append(tmp_path / f"m{i}.safetensors")
        save_file(sd, paths[-1])
    name = "base" if who == 0 else f"models[{who - 1}]"
    with pytest.raises(ValueError, match="contains NaN or Inf") as exc:
        pm.merge_files(method, paths[0], paths[1:], tmp_path / "o", scope=scope)
    assert f"tensor {key!r} of " in str(exc.value) and str(paths[who]) in str(exc.value), name
    assert not (tmp_path / "o").exists()


def test_task_arithmetic_overflow_is_not_an_input_error(tmp_path: Path) -> None:
    """Finite inputs whose merge overflows give ±Inf output (as before), not an input error."""
    base = {"w": torch.tensor([1.0, -1.0, 0.0], dtype=torch.bfloat16)}
    m = {"w": torch.tensor([3e38, -3e38, 1.0], dtype=torch.bfloat16)}
    paths = [tmp_path / "b.safetensors", tmp_path / "m.safetensors"]
    save_file(base, paths[0])
    save_file(m, paths[1])
    out = pm.merge_files(
        "task_arithmetic",
        paths[0],
        paths[1:] * 2,
        tmp_path / "o.safetensors",
        scope="tensor",
        lambdas=1.0,
    )
    mem = pm.task_arithmetic(base, [m, m], scope="tensor", lambdas=1.0)
    got = SafetensorsCheckpoint(out).load("w")
    assert torch.equal(got, mem["w"]) and bool(torch.isinf(got[:2]).all())


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32]
)
@pytest.mark.parametrize("pos", [0, 517, 999])
def test_finite_check(dtype: torch.dtype, pos: int) -> None:
    x = (torch.arange(1000) - 500).to(dtype)
    assert _engine._finite(x, "k", "m") is x
    assert _engine._finite(x[:0], "k", "m").numel() == 0
    if dtype.is_floating_point:
        for bad in (float("nan"), float("inf"), -float("inf")):
            y = x.clone()
            y[pos] = bad
            with pytest.raises(ValueError, match=r"tensor 'k' of m contains NaN or Inf"):
                _engine._finite(y, "k", "m")


def test_mapped_view_matches_load_and_never_touches_the_file(tmp_path: Path) -> None:
    sd = {
        "a": torch.randn(33, 7).bfloat16(),
        "odd": torch.ones(3, dtype=torch.uint8),
        "b": torch.randn(5000),
        "z": torch.zeros(0),
    }
    path = tmp_path / "x.safetensors"
    save_file(sd, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ck = SafetensorsCheckpoint(path)
    views = {}
    for k, v in sd.items():
        view = ck.view(k)
        if view is None:  # empty or misaligned: the caller reads instead
            assert k in ("z", "b") or v.numel() == 0
            continue
        assert torch.equal(view, v) and torch.equal(ck.load(k), v)
        views[k] = view
    for k, view in views.items():
        ck.release(k)
        assert torch.equal(view, sd[k])  # pages come back from the unchanged file
        view.zero_()  # copy-on-write: private to this process
        ck.release(k)
        assert torch.equal(ck.load(k), sd[k])
    buf = torch.empty(1 << 16, dtype=torch.uint8)
    assert torch.equal(ck.load_into("b", buf), sd["b"])
    with pytest.raises(ValueError, match="buffer too small"):
        ck.load_into("b", torch.empty(10, dtype=torch.uint8))
    ck.close()  # views still alive: no error, the mapping goes with them
    del views
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_low_histograms_match_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_select, "_CHUNK", 333)
    g = torch.Generator().manual_seed(3)
    row = torch.randn(2000, generator=g)
    row[:50] = -0.0
    hi = (row.view(torch.int32) >> 16) & 0xFFFF
    raws = sorted({int(hi[0]), int(hi[7]), int(hi[100]), 12345})
    got = _select._low_histograms(row, raws)
    for raw, h in zip(raws, got):
        assert torch.equal(h, _select._half_histogram(row, raw))
    assert torch.equal(
        _select._low_histograms(row, raws[:1])[0], _select._half_histogram(row, raws[0])
    )


def test_row_clamp_equals_clamp() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 101, generator=g)
    x[0, 0], x[1, 1], x[2, 2], x[0, 5], x[1, 7] = float("nan"), -0.0, float("inf"), -0.0, 0.0
    for lo, hi in [([-0.5, 0.0, 0.3], [0.5, 0.0, 2.0]), ([-0.0, -0.0, 0.0], [0.0, -0.0, 1.0])]:
        lo_t, hi_t = torch.tensor(lo)[:, None], torch.tensor(hi)[:, None]
        ref = x.clamp(lo_t, hi_t)
        got = _engine._clamp_(x.clone(), lo_t, hi_t)
        assert torch.equal(got.view(torch.int32), ref.view(torch.int32))


@pytest.mark.parametrize("method", ["ties", "pcb"])
def test_per_tensor_radix_selection_equals_kthvalue(
    bf16_files: Any, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """float32 per-tensor statistics by two-pass radix selection equal ``kthvalue``'s bit for bit."""
    base, models, _ = bf16_files
    fast = getattr(pm, method)(base, models, scope="tensor", out_dtype="float32")
    monkeypatch.setattr(_engine, "_tensor_selector", lambda impl, block: _select.InMemorySelector())
    ref = getattr(pm, method)(base, models, scope="tensor", out_dtype="float32")
    for k, v in ref.items():
        assert torch.equal(fast[k], v), k

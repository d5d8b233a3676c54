"""Streaming over safetensors files equals the in-memory merge; exact radix selection; atomic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pcb_merge as pm
import pytest
import torch
from pcb_merge._select import InMemorySelector, RadixSelector, float_keys, keys_to_float
from pcb_merge.checkpoints import SafetensorsCheckpoint, SafetensorsWriter, open_checkpoint
from safetensors.torch import load, save_file
from test_parity import make_problem

METHODS = [
    ("pcb", {"inter": "sum"}),
    ("pcb", {"inter": "normalized", "ratio": 0.2}),
    ("pcb", {"inter": "pairwise", "outlier": 0.05}),
    ("ties", {"density": 0.3}),
    ("dare", {"p": 0.6, "seed": 3}),
    ("task_arithmetic", {}),
]


def _write_sharded(sd: dict[str, torch.Tensor], folder: Path) -> Path:
    """Two shards and an index, like a Hugging Face checkpoint."""
    folder.mkdir(parents=True)
    keys = list(sd)
    half = {k: sd[k] for k in keys[: len(keys) // 2]}
    rest = {k: sd[k] for k in keys[len(keys) // 2 :]}
    save_file(half, folder / "model-00001-of-00002.safetensors")
    save_file(rest, folder / "model-00002-of-00002.safetensors")
    wmap = dict.fromkeys(half, "model-00001-of-00002.safetensors") | dict.fromkeys(
        rest, "model-00002-of-00002.safetensors"
    )
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": wmap})
    )
    return folder


@pytest.fixture(scope="module")
def problem(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], list[Path]]:
    base, models = make_problem(3, 0.1, seed=21)
    root = tmp_path_factory.mktemp("ckpts")
    paths = [root / "base.safetensors"]
    save_file(base, paths[0])
    for i, m in enumerate(models):
        if i == 1:
            paths.append(_write_sharded(m, root / "m1"))
        else:
            paths.append(root / f"m{i}.safetensors")
            save_file(m, paths[-1])
    return base, models, paths


def _digest(paths: list[Path]) -> list[str]:
    files = [f for p in paths for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
    return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


@pytest.mark.parametrize(("method", "params"), METHODS)
@pytest.mark.parametrize("scope", ["global", "tensor"])
def test_streaming_equals_in_memory(
    problem: Any, tmp_path: Path, method: str, params: dict, scope: str
) -> None:  # type: ignore[no-untyped-def]
    base, models, paths = problem
    before = _digest(paths)
    lam = [0.9, 1.1, 1.3]
    fn = getattr(pm, method)
    mem = fn(base, models, scope=scope, lambdas=lam, compute_dtype=torch.float64, **params)
    out = pm.merge_files(
        method,
        paths[0],
        paths[1:],
        tmp_path / "out",
        scope=scope,
        lambdas=lam,
        compute_dtype="float64",
        max_shard_bytes=2000,
        gather_limit=7,
        **params,
    )
    got = SafetensorsCheckpoint(out)
    assert sorted(got.keys()) == sorted(mem)
    for k, v in mem.items():
        torch.testing.assert_close(got.load(k), v, rtol=1e-6, atol=1e-12)
    assert (out / "model.safetensors.index.json").is_file()
    assert len(list(out.glob("*.safetensors"))) > 1
    assert _digest(paths) == before  # inputs untouched


def test_radix_selector_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5000, generator=g, dtype=torch.float64)
    x[0, :1000] = 0.0
    x[1, ::3] = -0.25
    x[2] = x[2].float().double()
    blocks = [x[:, :1234], x[:, 1234:1300], x[:, 1300:]]
    ranks = [0, 1, 999, 1000, 2500, 4999]
    for limit in (1, 50, 10**9):
        sel = RadixSelector(gather_limit=limit)
        vals, top = sel.select(lambda: iter(blocks), ranks, 3)
        ref, ref_top = InMemorySelector().select(lambda: iter(blocks), ranks, 3)
        assert torch.equal(vals, ref) and torch.equal(top, ref_top)
    assert sel.passes >= 1
    for v in (-3.5, -0.0, 0.0, 1e-300, 2.0, -1e300):
        assert (
            keys_to_float(
                int(float_keys(torch.tensor([v], dtype=torch.float64)).item()) & (2**64 - 1)
            )
            == v
        )


def test_float_keys_are_order_preserving() -> None:
    v = torch.tensor(
        [-1e300, -2.0, -1.0, -1e-300, 0.0, 1e-300, 1.0, 2.0, 1e300], dtype=torch.float64
    )
    k = float_keys(v) ^ (-(2**63))  # undo the sign flip: signed order == float order
    assert torch.all(k[1:] > k[:-1])


def test_single_file_output_bfloat16_and_bin_input(problem, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, models, paths = problem
    torch.save(models[0], tmp_path / "m0.bin")
    out = pm.merge_files(
        "ties",
        paths[0],
        [tmp_path / "m0.bin", paths[2]],
        tmp_path / "merged.safetensors",
        scope="global",
        density=0.5,
        out_dtype="bfloat16",
    )
    sd = load(out.read_bytes())  # readable by the reference safetensors loader
    assert sd["enc.weight"].dtype == torch.bfloat16
    assert sd["step"].dtype == torch.int64 and torch.equal(sd["step"], base["step"])
    mem = pm.ties(base, [models[0], models[1]], scope="global", density=0.5, out_dtype="bfloat16")
    torch.testing.assert_close(
        sd["enc.weight"].float(), mem["enc.weight"].float(), rtol=1e-2, atol=1e-2
    )


def test_reader_matches_safetensors(problem) -> None:  # type: ignore[no-untyped-def]
    _, models, paths = problem
    ck = open_checkpoint(paths[3])
    ref = load(paths[3].read_bytes())
    assert set(ck.keys()) == set(ref)
    for k in ref:
        assert torch.equal(ck.load(k), ref[k])
    sharded = open_checkpoint(paths[2])
    for k, v in models[1].items():
        assert torch.equal(sharded.load(k), v)


def test_output_is_atomic(problem, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _base, models, paths = problem
    bad = dict(models[2])
    bad["head"] = torch.full((5, 5), float("nan"), dtype=torch.float64)
    save_file(bad, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="NaN or Inf"):
        pm.merge_files(
            "task_arithmetic",
            paths[0],
            [paths[1], tmp_path / "bad.safetensors"],
            tmp_path / "out",
            scope="tensor",
        )
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.safetensors"
    ]  # no temporary left behind
    out = pm.merge_files("task_arithmetic", paths[0], paths[1:], tmp_path / "out", scope="tensor")
    with pytest.raises(ValueError, match="already exists"):
        pm.merge_files("task_arithmetic", paths[0], paths[1:], out, scope="tensor")
    pm.merge_files(
        "task_arithmetic", paths[0], paths[1:], out, scope="tensor", lambdas=0.5, overwrite=True
    )
    assert (out / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="one of the inputs"):
        pm.merge_files(
            "task_arithmetic", paths[0], paths[1:], paths[0], scope="tensor", overwrite=True
        )


def test_writer_refuses_out_of_plan_tensors(tmp_path: Path) -> None:
    w = SafetensorsWriter(tmp_path / "x.safetensors", [("a", (2,), torch.float32)])
    with pytest.raises(RuntimeError, match="expected tensor 'a'"):
        w.add("b", torch.zeros(2))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_radix_selector_float32_two_passes_is_exact() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6000, generator=g)
    x[0, :1500] = 0.0
    x[0, 1500:1600] = -0.0
    x[1, ::3] = -0.25
    x[2, :4] = float("inf")
    x[2, 4:8] = -3e38
    blocks = [x[:, :1234], x[:, 1234:1234], x[:, 1234:]]
    ranks = [0, 3, 4, 1499, 1500, 1599, 1600, 3000, 5999]
    sel = RadixSelector()
    vals, top = sel.select(lambda: iter(blocks), ranks, 3)
    ref, ref_top = InMemorySelector().select(lambda: iter(blocks), ranks, 3)
    assert torch.equal(vals, ref) and torch.equal(top, ref_top)
    assert sel.passes == 2


@pytest.mark.parametrize("inter", ["sum", "normalized", "pairwise"])
@pytest.mark.parametrize("scope", ["global", "tensor"])
def test_streaming_float32_bitwise_equals_in_memory(
    problem: Any, tmp_path: Path, inter: str, scope: str
) -> None:
    """Fused float32 path (two-pass selection, chunked kernels) equals the in-memory merge exactly."""
    base, models, paths = problem
    b32 = {k: v.float() if v.is_floating_point() else v for k, v in base.items()}
    m32 = [{k: v.float() if v.is_floating_point() else v for k, v in m.items()} for m in models]
    mem = pm.pcb(b32, m32, scope=scope, inter=inter, lambdas=[0.9, 1.1, 1.3])
    out = pm.merge_files(
        "pcb",
        paths[0],
        paths[1:],
        tmp_path / "out",
        scope=scope,
        inter=inter,
        lambdas=[0.9, 1.1, 1.3],
        out_dtype="float32",
    )
    got = SafetensorsCheckpoint(out)
    for k, v in mem.items():
        assert torch.equal(got.load(k), v), k

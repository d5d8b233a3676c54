"""Every bad input raises ValueError/TypeError naming the argument and the value."""

from __future__ import annotations

from pathlib import Path

import pcb_merge as pm
import pytest
import torch
from test_parity import make_problem


@pytest.fixture
def prob() -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    return make_problem(2, 0.1, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 0.0}, r"ratio must be a fraction in \(0, 1\], got 0.0"),
        ({"ratio": 1.5}, r"ratio must be a fraction in \(0, 1\], got 1.5"),
        ({"outlier": 0.6}, r"outlier must be in \[0, 0.5\), got 0.6"),
        ({"inter": "softmax"}, r"inter must be one of .* got 'softmax'"),
        ({"lambdas": 0.0}, r"lambdas must be finite and > 0, got 0.0"),
        ({"lambdas": -1.0}, r"lambdas must be finite and > 0"),
        ({"lambdas": float("nan")}, r"lambdas must be finite and > 0"),
        ({"lambdas": [1.0]}, r"lambdas has 1 entries but there are 2 models"),
        ({"scope": "layer"}, r"scope must be 'global' or 'tensor', got 'layer'"),
        (
            {"compute_dtype": torch.float16},
            r"compute_dtype must be float32 or float64, got torch.float16",
        ),
        ({"out_dtype": "int8"}, r"out_dtype must be None or one of .* got 'int8'"),
    ],
)
def test_pcb_bad_arguments(prob, kwargs: dict, match: str) -> None:  # type: ignore[no-untyped-def]
    base, models = prob
    args = {"scope": "global"} | kwargs
    with pytest.raises(ValueError, match=match):
        pm.pcb(base, models, **args)


def test_ties_dare_bad_arguments(prob) -> None:  # type: ignore[no-untyped-def]
    base, models = prob
    for d in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match=rf"density must be a fraction in \(0, 1\], got {d}"):
            pm.ties(base, models, scope="global", density=d)
    for p in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"p must be in \[0, 1\), got {p}"):
            pm.dare(base, models, p=p)
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        pm.dare(base, models, seed=-1)
    with pytest.raises(TypeError, match="lambdas must be a number or a sequence"):
        pm.task_arithmetic(base, models, lambdas="big")  # type: ignore[arg-type]


def test_mismatched_keys_report_symmetric_difference(prob) -> None:  # type: ignore[no-untyped-def]
    base, models = prob
    bad = dict(models[1])
    del bad["head"]
    bad["extra"] = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"symmetric difference \(2\): \['extra', 'head'\]"):
        pm.pcb(base, [models[0], bad], scope="global")


def test_mismatched_shapes_and_dtypes(prob) -> None:  # type: ignore[no-untyped-def]
    base, models = prob
    bad = dict(models[1])
    bad["head"] = torch.zeros(5, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"shapes differ .*head: \(5, 5\) in base vs \(5, 6\)"):
        pm.ties(base, [models[0], bad], scope="tensor")
    bad["head"] = models[1]["head"].float()
    with pytest.raises(
        ValueError, match=r"dtypes differ .*head: torch.float64 in base vs torch.float32"
    ):
        pm.ties(base, [models[0], bad], scope="tensor")


def test_non_finite_and_bad_types(prob) -> None:  # type: ignore[no-untyped-def]
    base, models = prob
    bad = dict(models[1])
    bad["head"] = models[1]["head"].clone()
    bad["head"][0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"tensor 'head' of models\[1\] contains NaN or Inf"):
        pm.task_arithmetic(base, [models[0], bad])
    with pytest.raises(TypeError, match="models must be a sequence"):
        pm.pcb(base, models[0], scope="global")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one fine-tuned checkpoint"):
        pm.pcb(base, [], scope="global")
    with pytest.raises(TypeError, match=r"base\['x'\] must be a torch.Tensor, got list"):
        pm.task_arithmetic({"x": [1.0]}, models)  # type: ignore[dict-item]


def test_zero_task_vector_is_handled_without_nan(prob) -> None:  # type: ignore[no-untyped-def]
    """Documented handling: a zero task vector contributes nothing (warning), never NaN."""
    base, models = prob
    with pytest.warns(RuntimeWarning, match=r"task vector\(s\) \[1\] are zero or constant"):
        out = pm.pcb(base, [models[0], base], scope="global", compute_dtype=torch.float64)
    alone = pm.pcb(base, [models[0], models[0]], scope="global", compute_dtype=torch.float64)
    for k in out:
        assert torch.isfinite(out[k].double()).all()
    # with the zero task dropped, the merge is task 0's selected clamped values only
    assert any(not torch.equal(out[k], base[k]) for k in out if k != "step")
    assert set(out) == set(alone)


def test_paths_and_files(tmp_path: Path, prob) -> None:  # type: ignore[no-untyped-def]
    _base, _models = prob
    with pytest.raises(
        ValueError, match=r"base='.*nope.safetensors' does not exist|path='.*' does not exist"
    ):
        pm.merge_files(
            "pcb",
            tmp_path / "nope.safetensors",
            [tmp_path / "a.safetensors"],
            tmp_path / "o",
            scope="global",
        )
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match=r"expected a .safetensors file"):
        pm.merge_files(
            "pcb", tmp_path / "x.pkl", [tmp_path / "x.pkl"], tmp_path / "o", scope="global"
        )
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a safetensors file"):
        pm.merge_files(
            "ties",
            tmp_path / "junk.safetensors",
            [tmp_path / "junk.safetensors"],
            tmp_path / "o",
            scope="global",
        )
    with pytest.raises(ValueError, match=r"method must be one of .* got 'fisher'"):
        pm.merge_files("fisher", tmp_path / "junk.safetensors", [], tmp_path / "o", scope="global")
    with pytest.raises(ValueError, match=r"pcb does not take parameter\(s\) \['density'\]"):
        pm.merge_files(
            "pcb", tmp_path / "junk.safetensors", [], tmp_path / "o", scope="global", density=0.2
        )

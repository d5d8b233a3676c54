"""The `pcb-merge CONFIG` command round-trips small safetensors files (YAML and TOML)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pcb_merge as pm
import pytest
import torch
from pcb_merge.checkpoints import SafetensorsCheckpoint
from pcb_merge.cli import main
from pcb_merge.config import load_config
from safetensors.torch import save_file
from test_parity import make_problem


@pytest.fixture
def files(tmp_path: Path) -> tuple[dict, list, Path]:
    base, models = make_problem(2, 0.1, seed=30)
    save_file(base, tmp_path / "base.safetensors")
    for i, m in enumerate(models):
        save_file(m, tmp_path / f"ft{i}.safetensors")
    return base, models, tmp_path


def test_yaml_config_round_trip(files, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    base, models, root = files
    (root / "merge.yaml").write_text(
        "method: pcb\nscope: global\nbase: base.safetensors\nmodels:\n  - path: ft0.safetensors\n    weight: 1.0\n"
        "  - path: ft1.safetensors\n    weight: 0.5\nlambda: 1.2\nparameters: {ratio: 0.2, inter: pairwise}\n"
        "compute_dtype: float64\noutput: out/\nmax_shard_size: 1KB\n"
    )
    assert main([str(root / "merge.yaml"), "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    got = SafetensorsCheckpoint(root / "out")
    ref = pm.pcb(
        base,
        models,
        scope="global",
        ratio=0.2,
        inter="pairwise",
        lambdas=[1.2, 0.6],
        compute_dtype=torch.float64,
    )
    for k, v in ref.items():
        torch.testing.assert_close(got.load(k), v, rtol=1e-6, atol=1e-12)
    assert got.metadata["merge_method"] == "pcb"
    assert main([str(root / "merge.yaml"), "--no-progress"]) == 2  # exists: refuses
    assert "already exists" in capsys.readouterr().err


def test_toml_config_and_console_script(files) -> None:  # type: ignore[no-untyped-def]
    base, models, root = files
    (root / "merge.toml").write_text(
        'method = "ties"\nscope = "tensor"\nbase = "base.safetensors"\nmodels = ["ft0.safetensors", "ft1.safetensors"]\n'
        'output = "merged.safetensors"\nout_dtype = "float32"\n[parameters]\ndensity = 0.4\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pcb_merge.cli", str(root / "merge.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = SafetensorsCheckpoint(root / "merged.safetensors")
    ref = pm.ties(base, models, scope="tensor", density=0.4, out_dtype="float32")
    for k, v in ref.items():
        torch.testing.assert_close(got.load(k), v)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("method: pcb\nbase: a\nmodels: [b]\noutput: o\n", "pcb needs an explicit scope"),
        ("method: fisher\nbase: a\nmodels: [b]\noutput: o\n", "method must be one of"),
        (
            "method: ties\nscope: global\nbase: a\nmodels: []\noutput: o\n",
            "models must be a non-empty list",
        ),
        ("method: ties\nscope: global\nbase: a\nmodels: [b]\n", "missing required key 'output'"),
        (
            "method: ties\nscope: global\nbase: a\nmodels: [b]\noutput: o\nparameters: {density: 0}\n",
            r"density must be a fraction in \(0, 1\], got 0",
        ),
        (
            "method: ties\nscope: global\nbase: a\nmodels: [b]\noutput: o\nlambda: 0\n",
            "lambdas must be finite and > 0",
        ),
        (
            "method: ties\nscope: global\nbase: a\nmodels: [b]\noutput: o\nmax_shard_size: lots\n",
            "max_shard_size must be",
        ),
        (
            "method: ties\nscope: global\nbase: a\nmodels: [b]\noutput: o\nweights: [1]\n",
            r"unknown key\(s\) \['weights'\]",
        ),
        ("method: [\n", "not valid YAML"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(tmp_path / "c.yaml")
    assert main([str(tmp_path / "c.yaml")]) == 2

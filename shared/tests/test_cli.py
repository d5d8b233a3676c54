from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from papershelf import cli
from papershelf.registry import MethodInfo

DEMO = textwrap.dedent(
    """
    from papershelf.registry import DemoResult

    def good(*, quick=True, seed=0, out_dir=None):
        return DemoResult(claim="x beats y", metric="error (lower is better)", method_value=0.1,
                          baseline_value=0.3 + seed, baseline="y", holds=True,
                          table=[{"model": "x", "error": 0.1}, {"model": "y", "error": 0.3, "max |x|": 2.0}])

    def bad(*, quick=True, seed=0, out_dir=None):
        raise RuntimeError("boom")

    def fails_claim(*, quick=True, seed=0, out_dir=None):
        return DemoResult(claim="z", metric="m", method_value=1.0, baseline_value=0.0, baseline="b", holds=False)
    """
)


def _info(name: str, fn: str) -> MethodInfo:
    return MethodInfo(
        name=name,
        title=f"Paper {name}",
        authors=("A. Author",),
        venue="ICLR 2024",
        year=2024,
        arxiv="2401.00001",
        code_url="",
        claim=f"claim of {name}",
        demo=f"fake_demos:{fn}",
    )


@pytest.fixture
def methods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, MethodInfo]:
    (tmp_path / "fake_demos.py").write_text(DEMO)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fake_demos", None)
    found = {
        "alpha": _info("alpha", "good"),
        "beta": _info("beta", "bad"),
        "gamma": _info("gamma", "fails_claim"),
    }
    monkeypatch.setattr(cli, "available_methods", lambda: found)
    return found


def test_list_and_info(methods: dict[str, MethodInfo], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "Paper beta" in out
    assert cli.main(["info", "alpha"]) == 0
    assert "claim of alpha" in capsys.readouterr().out
    assert cli.main(["info", "nope"]) == 2
    assert "no installed method named 'nope'" in capsys.readouterr().err


def test_repro_success_writes_results_and_report(
    methods: dict[str, MethodInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert cli.main(["repro", "alpha", "--out", str(out), "--seed", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    entry = results["methods"]["alpha"]
    assert entry["holds"] is True and entry["baseline_value"] == 2.3 and entry["seed"] == 2
    assert entry["method_value"] == 0.1 and entry["wall_s"] >= 0
    assert {"versions", "device", "git_revision"} <= set(results["environment"])
    report = (out / "REPORT.md").read_text()
    assert "| alpha |" in report and "x beats y" in report
    assert "| model | error | max \\|x\\| |" in report  # union of keys, pipes escaped
    assert "| y | 0.3 | 2 |" in report


def test_repro_reports_failures_and_runs_the_rest(
    methods: dict[str, MethodInfo], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["repro", "--out", str(out)]) == 1
    results = json.loads((out / "results.json").read_text())["methods"]
    assert results["alpha"]["holds"] is True
    assert results["beta"]["holds"] is False and "boom" in results["beta"]["error"]
    assert results["gamma"]["holds"] is False
    assert "beta failed" in capsys.readouterr().err


def test_repro_unknown_and_none_installed(
    methods: dict[str, MethodInfo],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert cli.main(["repro", "zzz", "--out", str(tmp_path)]) == 2
    assert "unknown method" in capsys.readouterr().err
    monkeypatch.setattr(cli, "available_methods", lambda: {})
    assert cli.main(["repro", "--out", str(tmp_path)]) == 2
    assert "No papershelf method packages are installed" in capsys.readouterr().out
    assert cli.main(["list"]) == 2


def test_repro_pins_threads_and_records_them(
    methods: dict[str, MethodInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, "7")
    assert cli.main(["repro", "alpha", "--out", str(tmp_path), "--threads", "1"]) == 0
    import os

    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    env = json.loads((tmp_path / "results.json").read_text())["environment"]
    assert env["blas_threads"] == "1"
    assert cli.main(["repro", "alpha", "--out", str(tmp_path), "--threads", "0"]) == 2

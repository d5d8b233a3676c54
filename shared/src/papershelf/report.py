"""Running demos and writing the reproduction report (``results.json``, ``REPORT.md``)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from papershelf.registry import DemoResult, MethodInfo


@dataclass
class MethodRun:
    info: MethodInfo
    result: DemoResult | None
    wall_s: float
    seed: int
    error: str = ""


@contextmanager
def _progress(total: int) -> Iterator[Any]:
    try:
        from rich.progress import Progress
    except ImportError:

        class _Plain:
            def update(self, name: str, i: int) -> None:
                print(f"[{i + 1}/{total}] running {name} ...", flush=True)

        yield _Plain()
        return
    with Progress(transient=True) as progress:
        task = progress.add_task("reproducing", total=total)

        class _Rich:
            def update(self, name: str, i: int) -> None:
                progress.update(task, completed=i, description=f"[{i + 1}/{total}] {name}")

        yield _Rich()
        progress.update(task, completed=total)


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def set_threads(n: int) -> None:
    """Use ``n`` BLAS/OpenMP/torch threads in this process.

    The environment variables only reach BLAS libraries loaded afterwards (the command sets them
    before any demo imports numpy); torch is set directly when it is already imported.
    """
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def run_methods(
    methods: Sequence[MethodInfo],
    *,
    quick: bool,
    seed: int,
    out_dir: Path,
    threads: int | None = None,
) -> list[MethodRun]:
    """Run each method's demo; a failure is captured (with its traceback) and the rest still run.

    With ``threads``, BLAS/OpenMP/torch use that many threads (set again after each demo import).
    """
    runs = []
    with _progress(len(methods)) as progress:
        for i, info in enumerate(methods):
            progress.update(info.name, i)
            start = time.perf_counter()
            target = out_dir / info.name
            target.mkdir(parents=True, exist_ok=True)
            try:
                demo = info.load_demo()
                if threads is not None:  # the demo module may have imported torch just now
                    set_threads(threads)
                result = demo(quick=quick, seed=seed, out_dir=target)
                if not isinstance(result, DemoResult):
                    raise TypeError(
                        f"demo of {info.name} returned {type(result).__name__}, not DemoResult"
                    )
                runs.append(MethodRun(info, result, time.perf_counter() - start, seed))
            except Exception:  # a broken demo must not stop the others
                runs.append(
                    MethodRun(info, None, time.perf_counter() - start, seed, traceback.format_exc())
                )
    return runs


def git_revision(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment(methods: Sequence[MethodInfo]) -> dict[str, Any]:
    """Versions, device, threads and git revision, recorded next to the numbers."""
    versions: dict[str, str] = {}
    for dist in [
        "papershelf",
        *(m.name for m in methods),
        "numpy",
        "scipy",
        "torch",
        "scikit-learn",
    ]:
        with contextlib.suppress(PackageNotFoundError):
            versions[dist] = version(dist)
    device, threads = "cpu", os.cpu_count()
    try:
        import torch

        device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        threads = torch.get_num_threads()
    except ImportError:
        pass
    return {
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": device,
        "torch_threads": threads,
        "blas_threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "git_revision": git_revision(),
    }


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


SUMMARY_HEADER = ["method", "claim", "metric", "method", "baseline", "holds", "time (s)"]


def summary_rows(
    runs: Sequence[MethodRun], *, failed: str = "FAILED", no: str = "NO"
) -> list[list[str]]:
    """One row per run under :data:`SUMMARY_HEADER` (the command's table and REPORT.md's)."""
    rows = []
    for r in runs:
        x = r.result
        if x is None:
            rows.append([r.info.name, r.info.claim, "-", "-", "-", failed, f"{r.wall_s:.1f}"])
            continue
        rows.append(
            [
                r.info.name,
                x.claim,
                x.metric,
                _fmt_cell(float(x.method_value)),
                f"{_fmt_cell(float(x.baseline_value))} ({x.baseline})",
                "yes" if x.holds else no,
                f"{r.wall_s:.1f}",
            ]
        )
    return rows


def _fmt_cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _md_row(cells: Sequence[str]) -> str:
    """One Markdown table row; a ``|`` inside a cell (e.g. ``max λ|x|``) is escaped."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def write_report(runs: Sequence[MethodRun], out_dir: Path, *, seed: int, quick: bool) -> Path:
    """Write ``results.json`` and ``REPORT.md`` into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment([r.info for r in runs])
    methods: dict[str, Any] = {}
    for r in runs:
        entry: dict[str, Any] = {
            "claim": r.info.claim,
            "wall_s": round(r.wall_s, 3),
            "seed": r.seed,
        }
        if r.result is None:
            entry.update(holds=False, error=r.error)
        else:
            res = asdict(r.result)
            res["figures"] = [os.path.relpath(f, out_dir) for f in r.result.figures]
            entry.update(_jsonable(res))
        methods[r.info.name] = entry
    payload = {"quick": quick, "seed": seed, "environment": env, "methods": methods}
    _atomic_write(out_dir / "results.json", json.dumps(payload, indent=2, sort_keys=False) + "\n")

    lines = [
        "# papershelf reproduction report",
        "",
        f"Run: {'quick' if quick else 'full'}, seed {seed}, device {env['device']}, "
        f"torch threads {env['torch_threads']}, git {env['git_revision']}.",
        "",
        _md_row(SUMMARY_HEADER),
        _md_row(["---"] * len(SUMMARY_HEADER)),
    ]
    lines += [_md_row(cells) for cells in summary_rows(runs, failed="**failed**", no="**no**")]
    for r in runs:
        lines += [
            "",
            f"## {r.info.name}",
            "",
            f"*{r.info.title}* ({r.info.venue}, {r.info.paper_url})",
            "",
        ]
        if r.result is None:
            lines += ["The demo failed:", "", "```", r.error.rstrip(), "```"]
            continue
        if r.result.table:
            keys = list(dict.fromkeys(k for row in r.result.table for k in row))
            lines += [_md_row(keys), _md_row(["---"] * len(keys))]
            for row in r.result.table:
                lines.append(_md_row([_fmt_cell(row.get(k, "")) for k in keys]))
        for fig in r.result.figures:
            rel = os.path.relpath(fig, out_dir)
            lines += ["", f"![{r.info.name}]({rel})"]
    lines += ["", "## Environment", "", "```json", json.dumps(env["versions"], indent=2), "```", ""]
    report = out_dir / "REPORT.md"
    _atomic_write(report, "\n".join(lines))
    return report

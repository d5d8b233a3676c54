"""The ``papershelf`` command: ``list``, ``info NAME`` and ``repro [NAME ...]``.

``repro`` runs each installed package's demo (its paper's central claim at small scale), prints
one table of method against baseline, and writes ``results.json``, ``REPORT.md`` and the demos'
PNG plots under ``--out``. A failing demo is reported and the others still run; the exit status is
1 when a claim does not hold or a demo fails, 2 for usage errors (unknown method, none installed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from papershelf.registry import MethodInfo, available_methods
from papershelf.report import (
    SUMMARY_HEADER,
    MethodRun,
    run_methods,
    set_threads,
    summary_rows,
    write_report,
)


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, ["-" * w for w in widths], *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    console = Console()
    if not console.is_terminal:  # a log or a pipe: do not squeeze long claims into 80 columns
        console = Console(width=max(console.width, 220))
    table = Table(*header, show_lines=False)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def cmd_list(_: argparse.Namespace) -> int:
    methods = available_methods()
    if not methods:
        print(
            "No papershelf method packages are installed (install one, e.g. `pip install lion-opt`)."
        )
        return 2
    _print_table(
        [[m.name, m.title, m.venue, m.arxiv] for m in methods.values()],
        ["method", "paper", "venue", "arXiv"],
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    methods = available_methods()
    if args.name not in methods:
        print(
            f"papershelf: no installed method named {args.name!r} (installed: {', '.join(methods) or 'none'})",
            file=sys.stderr,
        )
        return 2
    m: MethodInfo = methods[args.name]
    for key, value in (
        ("name", m.name),
        ("paper", m.title),
        ("authors", ", ".join(m.authors)),
        ("venue", m.venue),
        ("arXiv", m.paper_url),
        ("official code", m.code_url or "none released"),
        ("kind", m.kind),
        ("claim", m.claim),
        ("demo", m.demo),
    ):
        print(f"{key:>14}: {value}")
    return 0


def cmd_repro(args: argparse.Namespace) -> int:
    methods = available_methods()
    if not methods:
        print("No papershelf method packages are installed, so there is nothing to reproduce.")
        return 2
    names = args.names or list(methods)
    unknown = [n for n in names if n not in methods]
    if unknown:
        print(
            f"papershelf: unknown method(s) {unknown} (installed: {', '.join(methods)})",
            file=sys.stderr,
        )
        return 2
    if args.threads < 1:
        print(f"papershelf: --threads must be at least 1, got {args.threads}", file=sys.stderr)
        return 2
    set_threads(args.threads)  # before any demo imports numpy or torch
    out = Path(args.out)
    runs: list[MethodRun] = run_methods(
        [methods[n] for n in names],
        quick=not args.full,
        seed=args.seed,
        out_dir=out,
        threads=args.threads,
    )
    _print_table(summary_rows(runs), SUMMARY_HEADER)
    report = write_report(runs, out, seed=args.seed, quick=not args.full)
    print(f"Wrote {report.parent / 'results.json'} and {report}")
    for r in runs:
        if r.error:
            print(f"\n{r.info.name} failed:\n{r.error}", file=sys.stderr)
    ok = all(r.result is not None and r.result.holds for r in runs)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="papershelf", description="Papers as tested packages.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the installed methods").set_defaults(fn=cmd_list)
    info = sub.add_parser("info", help="show one method's paper, code and claim")
    info.add_argument("name")
    info.set_defaults(fn=cmd_info)
    repro = sub.add_parser(
        "repro", help="reproduce each method's central claim against its baseline"
    )
    repro.add_argument(
        "names", nargs="*", metavar="NAME", help="methods to run (default: all installed)"
    )
    repro.add_argument(
        "--full", action="store_true", help="the larger run instead of the quick one"
    )
    repro.add_argument(
        "--out", default="papershelf-results", help="report folder (default: %(default)s)"
    )
    repro.add_argument(
        "--seed", type=int, default=0, help="seed for every demo (default: %(default)s)"
    )
    repro.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP/torch threads for the demos (default: %(default)s; small demos run far "
        "faster single-threaded)",
    )
    repro.set_defaults(fn=cmd_repro)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

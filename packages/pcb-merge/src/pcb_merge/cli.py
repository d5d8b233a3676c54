"""The ``pcb-merge CONFIG`` command: run a YAML/TOML merge config with a progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pcb-merge",
        description="Merge checkpoints (task arithmetic, TIES, DARE, PCB-Merging) from a YAML or TOML config.",
    )
    p.add_argument("config", help="path to a .yaml/.yml/.toml merge config")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pcb_merge.config import load_config, run_config

    try:
        cfg = load_config(args.config)
        start = time.perf_counter()
        out = run_config(cfg, progress=not args.no_progress, overwrite=args.overwrite or None)
    except (ValueError, TypeError) as exc:
        print(f"pcb-merge: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"pcb-merge: wrote {out} ({cfg.method}, scope={cfg.scope}) in {time.perf_counter() - start:.1f}s"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

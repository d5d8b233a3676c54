"""``torchrun --nproc-per-node H -m monna.launch ...``: MoNNA on digits, one rank per honest node.

Each rank writes its final parameters to ``<out>/rank<r>.npy`` (atomically, no pickles) and
prints its test accuracy and the mean step time. ``--fail-rank``/``--fail-step`` inject a fault
(the rank exits, or hangs with ``--fail-mode hang``) to exercise the failure path.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from monna.core import MoNNAConfig
from monna.data import blobs_problem, digits_problem
from monna.distributed import DistributedMoNNA, PeerFailureError, init_process_group, save_array

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m monna.launch", description=__doc__)
    p.add_argument("--nodes", type=int, required=True, help="n: nodes, honest and Byzantine")
    p.add_argument("--byzantine", type=int, required=True, help="f: Byzantine nodes")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--aggregator", default="nna")
    p.add_argument("--attack", default="none")
    p.add_argument(
        "--tau", type=float, default=None, help="fixed ALIE/FOE factor (default: line search)"
    )
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--beta", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--dataset", choices=("digits", "blobs"), default="digits")
    p.add_argument(
        "--mismatch-rank", type=int, default=None, help="(testing) this rank builds a wider model"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a collective may wait")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--fail-rank", type=int, default=None)
    p.add_argument("--fail-step", type=int, default=0)
    p.add_argument("--fail-mode", choices=("exit", "hang"), default="exit")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> MoNNAConfig:
    kwargs = {"tau": args.tau} if args.attack in ("alie", "foe") else {}
    return MoNNAConfig(
        n=args.nodes,
        f=args.byzantine,
        lr=args.lr,
        beta=args.beta,
        lr_decay=0.0,
        batch_size=args.batch_size,
        aggregator=args.aggregator,
        attack=args.attack,
        attack_kwargs=kwargs,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(1)
    cfg = config_from(args)
    init_process_group(timeout=args.timeout)
    try:
        rank = dist.get_rank()
        hidden = args.hidden + (1 if rank == args.mismatch_rank else 0)
        build = digits_problem if args.dataset == "digits" else blobs_problem
        prob = build(
            cfg.honest, alpha=args.alpha, hidden=hidden, seed=args.seed, dtype=_DTYPES[args.dtype]
        )
        node = DistributedMoNNA(prob.model, prob.X, prob.y, prob.shards, cfg)
        t0 = time.perf_counter()
        for s in range(args.steps):
            if args.fail_rank == node.rank and s == args.fail_step:
                print(
                    f"rank {node.rank}: injected fault ({args.fail_mode}) at step {s}", flush=True
                )
                if args.fail_mode == "exit":
                    os._exit(0)
                time.sleep(3600)
            node.step()
        dt = (time.perf_counter() - t0) / max(args.steps, 1)
        acc = node.accuracy(prob.X_test, prob.y_test)
        print(f"rank {node.rank}: test accuracy {acc:.4f}, {dt * 1e3:.2f} ms/step", flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            save_array(args.out / f"rank{node.rank}.npy", node.params_.cpu().numpy())
    except PeerFailureError as exc:
        print(f"PeerFailureError: {exc}", file=sys.stderr, flush=True)
        return 3
    except ValueError as exc:
        print(f"ValueError: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        if dist.is_initialized():
            with contextlib.suppress(Exception):  # a broken group may fail to tear down
                dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

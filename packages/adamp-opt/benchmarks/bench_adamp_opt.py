"""step() time of AdamP against torch AdamW (foreach) and the official adamp, in one run.

Ratios are printed at the end (``-s``); torch threads are pinned (``ADAMP_BENCH_THREADS``,
default 1: one thread is the least noisy on a shared machine) and reported.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import adamp
import pytest
import torch
from adamp_opt import SGDP, AdamP

THREADS = int(os.environ.get("ADAMP_BENCH_THREADS", "1"))
RESULTS: dict[tuple[str, str], float] = {}


def _small() -> list[tuple[int, ...]]:
    rnd = random.Random(0)
    shapes: list[tuple[int, ...]] = []
    for _ in range(500):
        r = rnd.random()
        if r < 0.5:
            shapes.append((rnd.randint(4, 64),))
        elif r < 0.8:
            shapes.append((rnd.randint(4, 64), rnd.randint(4, 64)))
        else:
            shapes.append((rnd.randint(4, 32), rnd.randint(2, 16), 3, 3))
    return shapes


def _large() -> list[tuple[int, ...]]:
    d, shapes = 384, []
    for _ in range(6):  # ~1.77M per block: qkv, proj, 2 MLP matrices, norms, biases
        shapes += [
            (3 * d, d),
            (d, d),
            (4 * d, d),
            (d, 4 * d),
            (d,),
            (d,),
            (d,),
            (d,),
            (3 * d,),
            (4 * d,),
        ]
    shapes += [(8192, d)]  # embedding
    return shapes


SETS = {"500 small tensors": _small, "~10M parameters": _large}
OPTS: dict[str, Callable[[list[torch.Tensor]], Any]] = {
    "AdamW foreach (baseline)": lambda ps: torch.optim.AdamW(
        ps, lr=1e-3, weight_decay=1e-2, foreach=True
    ),
    "adamp official AdamP": lambda ps: adamp.AdamP(ps, lr=1e-3, weight_decay=1e-2),
    "adamp-opt AdamP": lambda ps: AdamP(ps, lr=1e-3, weight_decay=1e-2),
    "SGD foreach momentum": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, foreach=True),
    "adamp official SGDP": lambda ps: adamp.SGDP(ps, lr=1e-2, momentum=0.9),
    "adamp-opt SGDP": lambda ps: SGDP(ps, lr=1e-2, momentum=0.9),
}


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("set_name", list(SETS))
def test_step(benchmark: Any, set_name: str, opt_name: str) -> None:
    torch.set_num_threads(THREADS)
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in SETS[set_name]()]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    opt = OPTS[opt_name](params)
    for _ in range(3):
        opt.step()
    benchmark.pedantic(opt.step, rounds=15 if set_name.startswith("~") else 30, warmup_rounds=2)
    RESULTS[(set_name, opt_name)] = benchmark.stats.stats.median


def teardown_module() -> None:
    print(f"\n\nstep() median, torch threads = {THREADS}")
    for set_name in SETS:
        base = RESULTS.get((set_name, "AdamW foreach (baseline)"))
        off = RESULTS.get((set_name, "adamp official AdamP"))
        for (s, name), t in RESULTS.items():
            if s != set_name or base is None:
                continue
            extra = (
                f", {off / t:.2f}x faster than official AdamP"
                if name == "adamp-opt AdamP" and off
                else ""
            )
            print(
                f"  {set_name:>18} | {name:<26} {t * 1e3:8.2f} ms  = {t / base:5.2f}x AdamW-foreach{extra}"
            )

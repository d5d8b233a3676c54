"""step() time of AdamP against torch AdamW (foreach) and the official adamp, in one run.

Ratios are printed at the end (``-s``); torch threads are pinned (``ADAMP_BENCH_THREADS``,
default 1: one thread is the least noisy on a shared machine) and reported.
``ADAMP_BENCH_DEVICE=cuda`` runs the same sets on the GPU (each timed step ends with a
synchronisation) and adds fused AdamW as a second baseline.

``test_launch_proxy`` prints, for both sets, how many aten ops one warm step dispatches that
would each be a kernel launch on a GPU (a proxy for the launch overhead, measured on the CPU):
views, ``empty`` allocations and ops on 0-d host scalars (the CPU step counters) are left out.
adamp-opt AdamP is counted with its CPU arrangement and with the GPU arrangement forced on the
CPU (``adamp_opt._batched._DEVICE_ROUTING``). Printed, never asserted.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import adamp
import pytest
import torch
from adamp_opt import SGDP, AdamP, _batched
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

THREADS = int(os.environ.get("ADAMP_BENCH_THREADS", "1"))
DEVICE = torch.device(os.environ.get("ADAMP_BENCH_DEVICE", "cpu"))
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
    **(
        {"AdamW fused": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, fused=True)}
        if DEVICE.type == "cuda"
        else {}
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
    params = [torch.randn(s, generator=gen).to(DEVICE).requires_grad_() for s in SETS[set_name]()]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).to(DEVICE)
    opt = OPTS[opt_name](params)
    for _ in range(3):
        opt.step()

    def step() -> None:
        opt.step()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    benchmark.extra_info.update({"threads": THREADS, "device": str(DEVICE)})
    benchmark.pedantic(step, rounds=15 if set_name.startswith("~") else 30, warmup_rounds=2)
    RESULTS[(set_name, opt_name)] = benchmark.stats.stats.median


def teardown_module() -> None:
    print(f"\n\nstep() median on {DEVICE}, torch threads = {THREADS}")
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


class _Launches(TorchDispatchMode):
    """Counts the dispatched aten ops that would launch a kernel on a GPU (see the docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.launches = 0
        self.dispatched = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.dispatched += 1
        tensors = [t for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        host = not any(t.ndim for t in tensors)  # the 0-d CPU step counters, Python scalars
        if not (func.is_view or func._schema.name.startswith("aten::empty") or host):
            self.launches += 1
        return out


def _count(make: Callable[[list[torch.Tensor]], Any], shapes: list[tuple[int, ...]]) -> _Launches:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    opt = make(params)
    for _ in range(3):
        opt.step()
    with _Launches() as rec:
        opt.step()
    return rec


def test_launch_proxy(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts, not times (the fixture only makes ``--benchmark-only`` run it; it times the
    counting)."""
    benchmark.pedantic(_report, args=(monkeypatch,), rounds=1, iterations=1)


def _report(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(THREADS)
    print(f"\n\nlaunch proxy: aten ops per warm step (bucket bound {_batched.BUCKET_NUMEL})")
    for set_name, shapes in SETS.items():
        rows = [
            ("AdamW foreach", OPTS["AdamW foreach (baseline)"], False),
            ("adamp official AdamP", OPTS["adamp official AdamP"], False),
            ("adamp-opt AdamP, CPU routing", OPTS["adamp-opt AdamP"], False),
            ("adamp-opt AdamP, GPU routing", OPTS["adamp-opt AdamP"], True),
        ]
        for name, make, device in rows:
            monkeypatch.setattr(_batched, "_DEVICE_ROUTING", device)
            rec = _count(make, shapes())
            print(
                f"  {set_name:>18} | {name:<30} {rec.launches:6d} launch-like"
                f" ({rec.dispatched} dispatched)"
            )

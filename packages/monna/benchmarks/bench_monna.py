"""Benchmarks (``nox -s bench-monna``): ratios against the baseline measured in the same run.

- a simulator step of MoNNA vs D-SGD (averaging) as f grows (H = 10 honest, n = 10 + f);
- NNA vs Krum aggregation for n in {10, 30, 100} (d = 100 000): NNA is O(n d), Krum O(n^2 d);
- torchrun with 2 and 4 gloo ranks: ms per step of MoNNA vs D-SGD.
"""

from __future__ import annotations

import copy
import os
import re
import socket
import subprocess
import sys
import timeit
from typing import Any

import pytest
import torch
from monna import NNA, Krum, MoNNAConfig, Simulator, digits_problem

torch.set_num_threads(1)


def _best(fn: Any, number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


@pytest.fixture(scope="module")
def prob():  # type: ignore[no-untyped-def]
    return digits_problem(10, alpha=1.0, hidden=64)


@pytest.mark.parametrize("f", [0, 1, 2, 3])
def test_step_time_vs_dsgd(benchmark: Any, prob: Any, f: int) -> None:
    """H = 10 honest nodes, n = 10 + f; Byzantine nodes send -mean (cheap) so sets have n - f rows."""

    def make(rule: str) -> Simulator:
        cfg = MoNNAConfig(
            n=10 + f,
            f=f,
            lr=0.5,
            beta=0.9,
            lr_decay=0.0,
            batch_size=16,
            aggregator=rule,
            attack="sign_flipping" if f else None,
        )
        return Simulator(copy.deepcopy(prob.model), prob.X, prob.y, prob.shards, cfg)

    monna, dsgd = make("nna"), make("average")
    base = _best(dsgd.step, number=10)
    benchmark(monna.step)
    ratio = benchmark.stats.stats.min / base
    benchmark.extra_info.update(
        f=f, dsgd_s=base, ratio_vs_dsgd=ratio, threads=torch.get_num_threads()
    )
    print(f"\nf={f}: MoNNA step / D-SGD step = {ratio:.2f} (threads {torch.get_num_threads()})")


@pytest.mark.parametrize("n", [10, 30, 100])
def test_nna_vs_krum_aggregation(benchmark: Any, n: int) -> None:
    f = (n - 1) // 3
    v = torch.randn(n, 100_000, generator=torch.Generator().manual_seed(0))
    krum = Krum()
    nna = NNA()
    krum_s = _best(lambda: krum(v, f, 0), number=2, repeat=3)
    benchmark(nna, v, f, 0)
    ratio = krum_s / benchmark.stats.stats.min
    benchmark.extra_info.update(
        n=n, krum_s=krum_s, krum_over_nna=ratio, threads=torch.get_num_threads()
    )
    print(f"\nn={n}: Krum / NNA aggregation time = {ratio:.1f} (threads {torch.get_num_threads()})")


def _torchrun(world: int, rule: str) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(world),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        "-m",
        "monna.launch",
        "--nodes",
        str(world + 1 if world >= 4 else world),
        "--byzantine",
        "1" if world >= 4 else "0",
        "--aggregator",
        rule,
        "--steps",
        "60",
        "--hidden",
        "64",
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=600, check=True
    ).stdout
    times = [float(x) for x in re.findall(r"([0-9.]+) ms/step", out)]
    assert len(times) == world
    return max(times)


@pytest.mark.parametrize("world", [2, 4])
def test_torchrun_step_time(benchmark: Any, world: int) -> None:
    dsgd = _torchrun(world, "average")
    monna = benchmark.pedantic(_torchrun, args=(world, "nna"), rounds=1, iterations=1)
    benchmark.extra_info.update(world=world, dsgd_ms=dsgd, monna_ms=monna, ratio=monna / dsgd)
    print(
        f"\ntorchrun x{world}: MoNNA {monna:.2f} ms/step, D-SGD {dsgd:.2f} ms/step, ratio {monna / dsgd:.2f}"
    )

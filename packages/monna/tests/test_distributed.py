"""The torch.distributed executor: torchrun with 4 gloo ranks equals the simulator; faults fail
fast with an error naming the rank; mismatched models are refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from monna import Simulator, blobs_problem
from monna.launch import config_from, parse

COMMON = ["--dataset", "blobs", "--hidden", "8", "--batch-size", "8", "--seed", "2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1"
    )
    return env


def _ranks(
    world: int, args: list[str], timeout: float, hung: int | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Start ``world`` ranks as plain processes (env:// rendezvous on localhost); rank ``hung``
    is killed once the others have finished."""
    port = _free_port()
    procs = []
    for r in range(world):
        env = _env(port) | {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world)}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "monna.launch", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    out: dict[int, subprocess.CompletedProcess[str]] = {}
    order = [r for r in range(world) if r != hung] + ([hung] if hung is not None else [])
    for r in order:
        p = procs[r]
        if r == hung:
            p.kill()
        try:
            so, se = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
        out[r] = subprocess.CompletedProcess(p.args, p.returncode, so, se)
    return [out[r] for r in range(world)]


def test_torchrun_with_four_gloo_ranks_equals_the_simulator(tmp_path: Path) -> None:
    # label flipping exercises every distributed-only path: the half-step all-gather, the
    # all-gather of the flipped gradients, the attack and the shared received-set draw
    args = [
        "--nodes",
        "5",
        "--byzantine",
        "1",
        "--steps",
        "6",
        "--attack",
        "label_flipping",
        "--dtype",
        "float64",
        *COMMON,
    ]
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "4",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        "-m",
        "monna.launch",
        *args,
        "--out",
        str(tmp_path),
    ]
    res = subprocess.run(cmd, env=_env(port), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    a = parse(args)
    cfg = config_from(a)
    prob = blobs_problem(
        cfg.honest, alpha=a.alpha, hidden=a.hidden, seed=a.seed, dtype=torch.float64
    )
    sim = Simulator(prob.model, prob.X, prob.y, prob.shards, cfg).run(a.steps)
    for r in range(4):
        got = np.load(tmp_path / f"rank{r}.npy", allow_pickle=False)
        np.testing.assert_array_equal(got, sim.params_[r].numpy())
    assert not np.allclose(sim.params_[0].numpy(), sim.params_[1].numpy())  # nodes really differ


def test_a_rank_that_dies_is_named_by_the_survivors() -> None:
    args = [
        "--nodes",
        "4",
        "--byzantine",
        "1",
        "--steps",
        "6",
        "--timeout",
        "20",
        *COMMON,
        "--fail-rank",
        "2",
        "--fail-step",
        "2",
    ]
    res = _ranks(3, args, timeout=120)
    assert res[2].returncode == 0 and "injected fault (exit) at step 2" in res[2].stdout
    for r in (0, 1):
        assert res[r].returncode == 3, res[r].stderr[-3000:]
        assert "PeerFailureError" in res[r].stderr
        assert "rank(s) [2] failed or stopped sending at step 2" in res[r].stderr
        assert "rank 2 last reached step 1" in res[r].stderr
    # a closed connection is detected at once: the survivors do not sit out the 20 s timeout
    assert "Timed out" not in res[0].stderr


def test_a_rank_that_stops_sending_times_out_with_its_name() -> None:
    args = [
        "--nodes",
        "4",
        "--byzantine",
        "1",
        "--steps",
        "4",
        "--timeout",
        "4",
        *COMMON,
        "--fail-rank",
        "1",
        "--fail-step",
        "1",
        "--fail-mode",
        "hang",
    ]
    res = _ranks(3, args, timeout=60, hung=1)
    for r in (0, 2):
        assert res[r].returncode == 3, res[r].stderr[-3000:]
        assert "rank(s) [1] failed or stopped sending at step 1" in res[r].stderr
        assert "rank 1 last reached step 0" in res[r].stderr
        assert "Timed out waiting 4000ms" in res[r].stderr


def test_mismatched_models_are_refused_on_every_rank() -> None:
    args = ["--nodes", "3", "--byzantine", "0", "--steps", "2", *COMMON, "--mismatch-rank", "1"]
    res = _ranks(3, args, timeout=120)
    for r in range(3):
        assert res[r].returncode == 2, res[r].stderr[-3000:]
        assert (
            "parameter shapes differ across ranks: ranks [1] disagree with rank 0" in res[r].stderr
        )

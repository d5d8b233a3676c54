"""``step()`` time and extra memory of Lion against torch.optim.AdamW and lion-pytorch.

Two parameter sets: (a) a transformer-like list of ~150 tensors totalling ~10M elements and
(b) 500 tiny tensors (per-tensor overhead). Gradients are pre-filled; only ``step()`` is timed.
Ratios are to ``torch.optim.AdamW(foreach=True)`` measured in the same run and are printed at the
end (run with ``-s``) and stored in each benchmark's ``extra_info``. torch uses ONE thread.

Memory: ``state`` is the bytes of optimizer state per parameter byte; ``peak temp`` is the peak of
bytes held by temporaries during one (steady-state) ``step()``, per parameter byte, tracked with a
``TorchDispatchMode`` that follows every tensor an op allocates until it is freed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch
from lion_opt import Lion
from torch.utils._python_dispatch import TorchDispatchMode

torch.set_num_threads(1)


def _params(case: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if case == "a_10M_150":
        shapes: list[tuple[int, ...]] = [(5000, 256)]  # embedding
        for _ in range(12):  # 12 blocks of 12 tensors: attention, MLP, norms, biases
            shapes += [
                (256, 768),
                (768,),
                (256, 256),
                (256,),
                (256, 1024),
                (1024,),
                (1024, 256),
                (256,),
            ]
            shapes += [(256,), (256,), (256,), (256,)]
        shapes += [(256,), (256,), (256, 10), (10,)]
    else:
        shapes = [(8, 4)] * 250 + [(16,)] * 250
    ps = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    return ps


OPTIMIZERS: dict[str, Callable[[list[torch.Tensor]], Any]] = {
    "adamw_foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=True),
    "adamw_fused": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, fused=True),
    "adamw_single": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, foreach=False),
    "lion_opt_foreach": lambda ps: Lion(ps, lr=1e-4, weight_decay=1.0, foreach=True),
    "lion_opt_single": lambda ps: Lion(ps, lr=1e-4, weight_decay=1.0, foreach=False),
    "lion_pytorch": lambda ps: pytest.importorskip("lion_pytorch").Lion(
        ps, lr=1e-4, weight_decay=1.0
    ),
    "lion_pytorch_foreach": lambda ps: pytest.importorskip("lion_pytorch.foreach").Lion(
        ps, lr=1e-4, weight_decay=1.0
    ),
}
CASES = ("a_10M_150", "b_500_tiny")
RESULTS: dict[tuple[str, str], dict[str, float]] = {}


class _PeakTemp(TorchDispatchMode):
    """Peak bytes of storages that ops allocate (and that are still alive) inside the mode."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known, self.live, self.refs, self.now, self.peak = known, {}, {}, 0, 0

    def _free(self, ptr: int) -> None:
        self.refs[ptr] -= 1
        if self.refs[ptr] == 0:
            self.now -= self.live.pop(ptr)
            del self.refs[ptr]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (list, tuple)) else [out]:
            if isinstance(t, torch.Tensor):
                ptr = t.untyped_storage().data_ptr()
                if ptr in self.known or ptr == 0:
                    continue
                if ptr not in self.live:
                    self.live[ptr] = t.untyped_storage().nbytes()
                    self.refs[ptr] = 0
                    self.now += self.live[ptr]
                    self.peak = max(self.peak, self.now)
                self.refs[ptr] += 1
                weakref.finalize(t, self._free, ptr)
        return out


def _memory(opt: Any, ps: list[torch.Tensor]) -> tuple[float, float]:
    param_bytes = sum(p.numel() * p.element_size() for p in ps)
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    state_bytes = sum(t.numel() * t.element_size() for t in state if t.dim() > 0)
    known = {t.untyped_storage().data_ptr() for t in [*ps, *(p.grad for p in ps), *state]}
    mode = _PeakTemp(known)
    with mode:
        opt.step()
    return state_bytes / param_bytes, mode.peak / param_bytes


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    print(
        f"\nLion vs AdamW step() on CPU, torch {torch.__version__}, torch threads = {torch.get_num_threads()}"
    )
    print(
        f"{'case':<12} {'optimizer':<22} {'median ms':>10} {'× AdamW-foreach':>16} {'state/param':>12} {'peak temp/param':>16}"
    )
    for (case, name), r in RESULTS.items():
        base = RESULTS.get((case, "adamw_foreach"), {}).get("median")
        ratio = r["median"] / base if base else float("nan")
        print(
            f"{case:<12} {name:<22} {r['median'] * 1e3:>10.3f} {ratio:>16.2f} {r['state']:>12.2f} {r['peak']:>16.2f}"
        )


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("case", CASES)
def test_step(benchmark: Any, case: str, name: str) -> None:
    ps = _params(case)
    try:
        opt = OPTIMIZERS[name](ps)
        opt.step()  # create state
    except RuntimeError as exc:  # e.g. fused AdamW unsupported on this device/dtype
        pytest.skip(f"{name} unavailable here: {exc}")
    state, peak = _memory(opt, ps)
    benchmark.pedantic(
        opt.step, rounds=30 if case.startswith("a") else 100, warmup_rounds=3, iterations=1
    )
    median = benchmark.stats.stats.median
    RESULTS[(case, name)] = {"median": median, "state": state, "peak": peak}
    base = RESULTS.get((case, "adamw_foreach"), {}).get("median")
    benchmark.extra_info.update(
        {"threads": torch.get_num_threads(), "state_per_param": state, "peak_temp_per_param": peak}
    )
    if base:
        benchmark.extra_info["ratio_to_adamw_foreach"] = median / base

# mypy: disable-error-code="no-untyped-call,index,call-overload,arg-type,misc,operator"
"""CUDA: the steps equal the CPU steps and never synchronise with the host.

The ``gpu`` tests are skipped with a reason without CUDA (papershelf.testing plugin). The last
test is their CPU stand-in that runs everywhere: it records the dispatched ops of a step and
rejects the two ways a step could synchronise on a device, a tensor built from host data
(``torch.tensor(x, device=...)`` is a blocking host-to-device copy) and reading a value back
(``.item()``), except for the CPU step counters, which torch.optim reads the same way.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from typing import Any

import pytest
import torch
from adamp_opt import SGDP, AdamP, _batched
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

OPTS: dict[str, tuple[type, dict[str, Any]]] = {
    "AdamP": (AdamP, {"lr": 1e-2, "weight_decay": 1e-2}),
    "AdamP-nesterov": (AdamP, {"lr": 1e-2, "weight_decay": 1e-2, "nesterov": True}),
    "SGDP": (SGDP, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2}),
}


def _net() -> nn.Module:
    """conv+BN (channel view), a large Linear+LN (layer view, stepped one at a time), a head."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 6 * 6, 64, bias=False), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 5),
    )  # fmt: skip


@pytest.fixture(params=["default", "small-buckets"])
def buckets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The device routing as shipped (one bucket here), or in buckets of at most 5000 elements
    (the Linear of 36864 alone) with the row factors gathered per element."""
    if request.param == "small-buckets":
        monkeypatch.setattr(_batched, "BUCKET_NUMEL", 5000)
        monkeypatch.setattr(_batched, "_MAX_ROW_BLOCKS", 0)
    return str(request.param)


def _grads(model: nn.Module, t: int) -> list[torch.Tensor]:
    """Gradients of the CPU model on batch ``t`` (the device copies get the very same values)."""
    gen = torch.Generator().manual_seed(t)
    x, y = torch.randn(8, 3, 8, 8, generator=gen), torch.randint(0, 5, (8,), generator=gen)
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    return [g.clone() for g in grads if g is not None]


@pytest.mark.gpu
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("name", list(OPTS))
@pytest.mark.usefixtures("buckets")
def test_cuda_float32_steps_equal_the_cpu_steps(
    name: str, foreach: bool, torch_device: torch.device
) -> None:
    cls, kw = OPTS[name]
    cpu = _net()
    dev = copy.deepcopy(cpu).to(torch_device)
    oc = cls(cpu.parameters(), foreach=foreach, **kw)
    od = cls(dev.parameters(), foreach=foreach, **kw)
    for t in range(5):
        for p, q, g in zip(dev.parameters(), cpu.parameters(), _grads(cpu, t), strict=True):
            q.grad = g
            p.grad = g.to(torch_device)
        oc.step()
        od.step()
        assert od.projection_decisions(dev.named_parameters()) == oc.projection_decisions(
            cpu.named_parameters()
        ), f"step {t}"
    decisions = oc.projection_decisions(cpu.named_parameters())
    assert decisions["0.weight"] == "channel"
    assert decisions["4.weight"] == "layer"
    for (n, p), q in zip(dev.named_parameters(), cpu.parameters(), strict=True):
        assert p.device.type == "cuda"
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.gpu
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("name", list(OPTS))
@pytest.mark.usefixtures("buckets")
def test_cuda_steps_do_not_synchronise(
    name: str, foreach: bool, torch_device: torch.device
) -> None:
    """Warm-up first: the first step builds the cached row layouts, which copies a few index
    tensors to the device once (a synchronisation per new set of shapes, not per step)."""
    cls, kw = OPTS[name]
    cpu = _net()
    model = copy.deepcopy(cpu).to(torch_device)
    for p, g in zip(model.parameters(), _grads(cpu, 0), strict=True):
        p.grad = g.to(torch_device)
    opt = cls(model.parameters(), foreach=foreach, **kw)
    for _ in range(2):
        opt.step()
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    try:
        with warnings.catch_warnings():  # "prototype feature" notice on switching the mode on
            warnings.simplefilter("ignore", UserWarning)
            torch.cuda.set_sync_debug_mode("error")
        for _ in range(3):
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()
    assert all(torch.isfinite(p).all() for p in model.parameters())


class _HostValues(TorchDispatchMode):
    """Records the ops that would synchronise on a device, with their operands."""

    def __init__(self) -> None:
        super().__init__()
        self.found: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten.lift_fresh.default:
            self.found["tensor from host data"] += 1
        if func is torch.ops.aten._local_scalar_dense.default:
            (t,) = args
            is_step = t.dtype == torch.float64 and t.ndim == 0  # the CPU step counters
            self.found["step counter read" if is_step else "device value read"] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("routing", ["cpu", "device"])
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("name", list(OPTS))
def test_warm_steps_read_no_host_values(
    name: str, foreach: bool, routing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``routing="device"``: the GPU arrangement forced on the CPU (several buckets, gathered
    row factors)."""
    if routing == "device":
        monkeypatch.setattr(_batched, "_DEVICE_ROUTING", True)
        monkeypatch.setattr(_batched, "BUCKET_NUMEL", 5000)
        monkeypatch.setattr(_batched, "_MAX_ROW_BLOCKS", 0)
    cls, kw = OPTS[name]
    model = _net()
    _grads(model, 0)
    opt = cls(model.parameters(), foreach=foreach, **kw)
    opt.step()
    with _HostValues() as rec:
        opt.step()
    assert set(rec.found) <= {"step counter read"}, rec.found

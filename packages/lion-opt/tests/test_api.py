"""The optimizer's API: state_dict (dtype-preserving, weights_only), complex and low-precision
parameters, foreach default, per-group kappa, constraint_violation, lazy import."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from typing import Any

import lion_opt
import pytest
import torch
from lion_opt import Clip, Lion, constraint_violation


def _fill(params: list[torch.Tensor], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)


def test_state_dict_keeps_float32_momentum_for_bfloat16_params() -> None:
    p = torch.randn(8, 3).to(torch.bfloat16).requires_grad_()
    opt = Lion([p], lr=1e-2, state_dtype=torch.float32)
    _fill([p], 0)
    opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.float32
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)  # plain data only: kappa is stored as its spec
    q = p.detach().clone().requires_grad_()
    opt2 = Lion([q], lr=1e-2, state_dtype=torch.float32)
    opt2.load_state_dict(loaded)
    assert opt2.state[q]["exp_avg"].dtype == torch.float32
    assert torch.equal(opt2.state[q]["exp_avg"], opt.state[p]["exp_avg"])
    # Group options come from the checkpoint, as for lr: state_dtype=float32 is restored too.
    opt3 = Lion([q.detach().clone().requires_grad_()], lr=1e-2)
    opt3.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt3.param_groups[0]["state_dtype"] == torch.float32
    assert next(iter(opt3.state.values()))["exp_avg"].dtype == torch.float32
    # A checkpoint without state_dtype follows torch's policy: state takes the parameter's dtype.
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][0]["state_dtype"] = None
    opt3.load_state_dict(sd)
    assert next(iter(opt3.state.values()))["exp_avg"].dtype == torch.bfloat16


def test_float32_state_computes_the_update_in_float32() -> None:
    """bfloat16 params with float32 state equal float32 params rounded once per step."""
    x = torch.randn(64, dtype=torch.float64)
    p16 = x.to(torch.bfloat16).requires_grad_()
    p32 = x.to(torch.bfloat16).float().requires_grad_()
    o16 = Lion([p16], lr=1e-2, weight_decay=0.5, state_dtype=torch.float32)
    o32 = Lion([p32], lr=1e-2, weight_decay=0.5)
    for s in range(5):
        _fill([p32], s)
        assert p32.grad is not None
        p16.grad = p32.grad.to(torch.bfloat16)
        p32.grad = p16.grad.float()
        o16.step()
        o32.step()
        with torch.no_grad():
            p32.copy_(p32.to(torch.bfloat16).float())
        assert torch.equal(p16.detach().float(), p32.detach())


def test_complex_params_update_real_and_imaginary_parts_separately() -> None:
    z = torch.randn(5, dtype=torch.complex128, requires_grad=True)
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    oz, orr = Lion([z], lr=1e-2, weight_decay=0.3), Lion([r], lr=1e-2, weight_decay=0.3)
    for s in range(3):
        _fill([r], s)
        assert r.grad is not None
        z.grad = torch.view_as_complex(r.grad.clone())
        oz.step()
        orr.step()
    assert torch.equal(torch.view_as_real(z.detach()), r.detach())


def test_foreach_default_and_results_identical() -> None:
    a = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    b = [x.detach().clone().requires_grad_() for x in a]
    oa, ob = Lion(a, lr=1e-2, weight_decay=0.1), Lion(b, lr=1e-2, weight_decay=0.1, foreach=False)
    assert oa.param_groups[0]["foreach"] is None
    for s in range(4):
        _fill(a, s)
        _fill(b, s)
        oa.step()
        ob.step()
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_mixed_dtypes_and_devices_in_one_group() -> None:
    ps = [
        torch.randn(3, dtype=d, requires_grad=True)
        for d in (torch.float64, torch.float32, torch.float16)
    ]
    qs = [p.detach().clone().requires_grad_() for p in ps]
    oa, ob = Lion(ps, lr=1e-2, foreach=True), Lion(qs, lr=1e-2, foreach=False)
    for s in range(3):
        _fill(ps, s)
        _fill(qs, s)
        oa.step()
        ob.step()
    for p, q in zip(ps, qs):
        assert p.dtype == q.dtype
        assert torch.equal(p, q)


def test_per_group_kappa_and_constraint_violation() -> None:
    w = torch.zeros(10, requires_grad=True)
    v = torch.zeros(10, requires_grad=True)
    n = torch.zeros(10, requires_grad=True)
    groups: list[dict[str, Any]] = [
        {"params": [w]},
        {"params": [v], "kappa": "l2"},
        {"params": [n], "weight_decay": 0.0},
    ]
    opt = Lion(
        groups,
        lr=0.05,
        weight_decay=2.0,
    )
    assert [g["kappa"] for g in opt.param_groups] == ["sign", "l2", "sign"]
    for _ in range(200):
        for p in (w, v, n):
            p.grad = -torch.ones(10)
        opt.step()
    box, ball, free = constraint_violation(opt)
    assert box == pytest.approx(1.0, abs=1e-5)  # w at the box corner 1/λ (float32)
    assert ball == pytest.approx(1.0, abs=1e-5)  # ‖v‖₂ on the sphere 1/λ
    assert free == 0.0  # no decay: no constraint
    assert float(w.detach().max()) == pytest.approx(0.5, abs=1e-5)
    assert float(torch.linalg.vector_norm(v.detach())) == pytest.approx(0.5, abs=1e-5)


def test_kappa_objects_are_stored_as_specs_and_custom_ones_kept() -> None:
    opt = Lion([torch.zeros(2, requires_grad=True)], kappa=Clip(0.5))
    assert opt.param_groups[0]["kappa"] == "clip(0.5)"

    class Half(lion_opt.Kappa):
        def direction(self, c: torch.Tensor) -> torch.Tensor:
            return 0.5 * torch.sign(c)

    half = Half()
    p = torch.ones(2, requires_grad=True)
    opt = Lion([p], lr=0.1, kappa=half)
    assert opt.param_groups[0]["kappa"] is half
    p.grad = torch.ones(2)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.95))


def test_grads_are_not_modified() -> None:
    p = torch.randn(6, requires_grad=True)
    g = torch.randn(6)
    p.grad = g.clone()
    Lion([p], lr=1e-2, weight_decay=0.1, maximize=True).step()
    assert torch.equal(p.grad, g)


def test_import_does_not_load_torch() -> None:
    code = "import sys, lion_opt, lion_opt._method; assert 'torch' not in sys.modules; print(lion_opt.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip()
    assert "Lion" in dir(lion_opt)


@pytest.mark.gpu
def test_cuda_matches_cpu(torch_device: torch.device) -> None:
    cpu = [torch.randn(257, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    dev = [p.detach().to(torch_device).requires_grad_() for p in cpu]
    for fe in (False, True):
        oc, od = (
            Lion(cpu, lr=1e-2, weight_decay=0.5),
            Lion(dev, lr=1e-2, weight_decay=0.5, foreach=fe),
        )
        for s in range(10):
            _fill(cpu, s)
            for p, q in zip(dev, cpu):
                assert q.grad is not None
                p.grad = q.grad.to(torch_device)
            oc.step()
            od.step()
        for p, q in zip(dev, cpu):
            torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=0, atol=1e-12)

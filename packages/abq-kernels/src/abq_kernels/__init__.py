"""abq-kernels: ABQ-LLM arbitrary-bit quantization and bit-plane GEMM kernels.

Zeng et al., "ABQ-LLM: Arbitrary-Bit Quantized Inference Acceleration for Large Language Models"
(AAAI 2025, arXiv:2408.08554). Importing this package does not import torch or the compiled
extension; the names below load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from abq_kernels._backend import BackendStatus, available_backends, build_info
    from abq_kernels.calibration import (
        CalibrationConfig,
        calibrate_block,
        distribution_correction_loss,
    )
    from abq_kernels.kernels import gemm, gemm_packed, max_k, pack
    from abq_kernels.linear import QuantLinear
    from abq_kernels.quantizer import QuantizedTensor, fake_quantize, quantize

__all__ = [
    "BackendStatus",
    "CalibrationConfig",
    "QuantLinear",
    "QuantizedTensor",
    "__version__",
    "available_backends",
    "build_info",
    "calibrate_block",
    "distribution_correction_loss",
    "fake_quantize",
    "gemm",
    "gemm_packed",
    "max_k",
    "pack",
    "quantize",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BackendStatus": "._backend",
        "available_backends": "._backend",
        "build_info": "._backend",
        "CalibrationConfig": ".calibration",
        "calibrate_block": ".calibration",
        "distribution_correction_loss": ".calibration",
        "gemm": ".kernels",
        "gemm_packed": ".kernels",
        "max_k": ".kernels",
        "pack": ".kernels",
        "QuantLinear": ".linear",
        "QuantizedTensor": ".quantizer",
        "fake_quantize": ".quantizer",
        "quantize": ".quantizer",
    },
    eager={"__version__": None},
)

try:
    __version__ = version("abq-kernels")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0+unknown"

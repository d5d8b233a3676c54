"""Argument checks shared by the in-memory API, the file API and the command."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

METHODS = ("task_arithmetic", "ties", "dare", "pcb")
SCOPES = ("global", "tensor")
INTERS = ("sum", "normalized", "pairwise")
COMPUTE_DTYPES = {"float32": torch.float32, "float64": torch.float64}
OUT_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fraction(name: str, value: Any) -> float:
    """A fraction in (0, 1] (ratio, density)."""
    if not _is_number(value) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")
    return float(value)


def drop_rate(name: str, value: Any) -> float:
    if not _is_number(value) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def outlier(value: Any) -> float:
    if not _is_number(value) or not 0.0 <= float(value) < 0.5:
        raise ValueError(f"outlier must be in [0, 0.5), got {value!r}")
    return float(value)


def scope(value: Any) -> str:
    if value not in SCOPES:
        raise ValueError(f"scope must be 'global' or 'tensor', got {value!r}")
    return str(value)


def inter(value: Any) -> str:
    if value not in INTERS:
        raise ValueError(f"inter must be one of {INTERS}, got {value!r}")
    return str(value)


def lambdas(value: Any, n: int) -> torch.Tensor:
    """λ as a float64 tensor of length n: a positive scalar or n positive finite numbers."""
    if _is_number(value):
        vals: Sequence[Any] = [value] * n
    elif isinstance(value, (Sequence, torch.Tensor)) and not isinstance(value, str):
        vals = [float(v) for v in value] if isinstance(value, torch.Tensor) else list(value)
        if len(vals) != n:
            raise ValueError(f"lambdas has {len(vals)} entries but there are {n} models")
    else:
        raise TypeError(
            f"lambdas must be a number or a sequence of {n} numbers, got {type(value).__name__}"
        )
    for v in vals:
        if not _is_number(v) or not math.isfinite(float(v)) or float(v) <= 0:
            raise ValueError(f"lambdas must be finite and > 0, got {value!r}")
    return torch.tensor([float(v) for v in vals], dtype=torch.float64)


def compute_dtype(value: Any) -> torch.dtype:
    if isinstance(value, str) and value in COMPUTE_DTYPES:
        return COMPUTE_DTYPES[value]
    if value in (torch.float32, torch.float64):
        return value  # type: ignore[no-any-return]
    raise ValueError(f"compute_dtype must be float32 or float64, got {value!r}")


def out_dtype(value: Any) -> torch.dtype | None:
    if value is None:
        return None
    if isinstance(value, str) and value in OUT_DTYPES:
        return OUT_DTYPES[value]
    if isinstance(value, torch.dtype) and value in OUT_DTYPES.values():
        return value
    raise ValueError(f"out_dtype must be None or one of {tuple(OUT_DTYPES)}, got {value!r}")


def n_models(n: int, method: str) -> None:
    if n < 1:
        raise ValueError("models must hold at least one fine-tuned checkpoint, got 0")

"""Every bad input raises a clear error naming the argument and the value."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from apg_guidance import (
    AdaptiveProjectedGuidance,
    apg,
    cfg,
    edm_sigmas,
    from_x0,
    rescaled_cfg,
    to_x0,
)

C = torch.randn(2, 3, 4)
U = torch.randn(2, 3, 4)


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        ((C, U[:1], 5.0), {}, ValueError, "same shape"),
        ((C, U.double(), 5.0), {}, TypeError, "same dtype"),
        ((C, U.meta if hasattr(U, "meta") else U.to("meta"), 5.0), {}, ValueError, "same device"),
        ((C.long(), U.long(), 5.0), {}, TypeError, "floating-point"),
        ((C.numpy(), U, 5.0), {}, TypeError, "torch.Tensor"),
        ((C[0, 0], U[0, 0], 5.0), {}, ValueError, "batch dim"),
        ((C, U, 0.5), {}, ValueError, r"guidance_scale must be >= 1.*0.5"),
        (
            (C, U, -0.5),
            {"scale_convention": "comfyui"},
            ValueError,
            r"guidance_scale must be >= 0.*-0.5",
        ),
        ((C, U, 0.5), {"scale_convention": "diffusers"}, ValueError, "guidance_scale must be >= 1"),
        ((C, U, 5.0), {"scale_convention": "forge"}, ValueError, "scale_convention.*forge"),
        ((C, U, float("nan")), {}, ValueError, "guidance_scale must be finite"),
        ((C, U, "5"), {}, TypeError, "guidance_scale must be a real number"),
        ((C, U, 5.0), {"momentum": 1.0}, ValueError, r"\|momentum\| < 1.*1.0"),
        ((C, U, 5.0), {"momentum": -1.5}, ValueError, r"momentum.*-1.5"),
        ((C, U, 5.0), {"norm_threshold": -1.0}, ValueError, r"norm_threshold must be >= 0.*-1.0"),
        ((C, U, 5.0), {"eta": float("inf")}, ValueError, "eta must be finite"),
        ((C, U, 5.0), {"dims": 0}, ValueError, "batch dim"),
        ((C, U, 5.0), {"dims": (1, 5)}, ValueError, "out of range"),
        ((C, U, 5.0), {"dims": ()}, ValueError, "at least one"),
        ((C, U, 5.0), {"dims": (1.0,)}, TypeError, "dims must be ints"),
        (
            (C, U, 5.0),
            {"state": torch.zeros(3, 3, 4), "momentum": -0.5},
            ValueError,
            "state has shape",
        ),
        ((C, U, 5.0), {"state": [1.0]}, TypeError, "state must be a torch.Tensor"),
        ((C, U, 5.0), {"compute_dtype": torch.int32}, TypeError, "compute_dtype"),
    ],
)
def test_apg_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        apg(*args, **kwargs)


def test_class_validates_at_construction() -> None:
    with pytest.raises(ValueError, match="momentum"):
        AdaptiveProjectedGuidance(5.0, momentum=1.0)
    with pytest.raises(ValueError, match="guidance_scale must be >= 1"):
        AdaptiveProjectedGuidance(0.9)
    with pytest.raises(ValueError, match="norm_threshold"):
        AdaptiveProjectedGuidance(5.0, norm_threshold=-2.0)
    with pytest.raises(ValueError, match="prediction_type"):
        AdaptiveProjectedGuidance(5.0, prediction_type="x0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale_convention"):
        AdaptiveProjectedGuidance(5.0, scale_convention="a1111")  # type: ignore[arg-type]


def test_baseline_and_helper_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        cfg(C, U[:1], 3.0)
    with pytest.raises(ValueError, match="phi must be in"):
        rescaled_cfg(C, U, 3.0, phi=1.5)
    with pytest.raises(ValueError, match="prediction_type"):
        to_x0(C, U, prediction_type="x0", sigma=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha must be finite and positive"):
        to_x0(C, U, prediction_type="epsilon", sigma=1.0, alpha=0.0)
    with pytest.raises(ValueError, match="sigma must be finite and positive"):
        from_x0(C, U, prediction_type="epsilon", sigma=0.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        to_x0(C, U, prediction_type="epsilon", sigma=torch.ones(3))
    with pytest.raises(ValueError, match="n_steps"):
        edm_sigmas(0)

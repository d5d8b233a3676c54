from __future__ import annotations

import numpy as np
import pytest

from papershelf.devices import deterministic, get_device, numpy_rng, torch_generator

torch = pytest.importorskip("torch")


def test_get_device_argument_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPERSHELF_DEVICE", raising=False)
    assert get_device("cpu").type == "cpu"
    assert get_device().type in {"cuda", "mps", "cpu"}
    monkeypatch.setenv("PAPERSHELF_DEVICE", "cpu")
    assert get_device().type == "cpu"
    monkeypatch.setenv("PAPERSHELF_DEVICE", "nonsense")
    with pytest.raises(ValueError, match="PAPERSHELF_DEVICE='nonsense'"):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_an_error() -> None:
    with pytest.raises(ValueError, match="not available"):
        get_device("cuda")


def test_generators_are_seeded_and_explicit() -> None:
    a = torch.randn(5, generator=torch_generator(7))
    b = torch.randn(5, generator=torch_generator(7))
    assert torch.equal(a, b)
    assert numpy_rng(3).integers(1000) == numpy_rng(3).integers(1000)
    g = np.random.default_rng(1)
    assert numpy_rng(g) is g
    with pytest.raises(ValueError, match="seed"):
        numpy_rng(-1)
    with pytest.raises(ValueError, match="seed"):
        torch_generator(1.5)  # type: ignore[arg-type]


def test_deterministic_mode_restores_settings() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic
    assert torch.are_deterministic_algorithms_enabled() == before

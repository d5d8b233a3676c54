from __future__ import annotations

import numpy as np
import pytest

from papershelf import MissingExtraError, require
from papershelf.data import (
    DATASETS,
    dirichlet_split,
    gaussian_mixture,
    load_split,
    split_into_tasks,
    teacher_student_regression,
)


@pytest.mark.parametrize("name", DATASETS)
def test_load_split_is_a_fixed_disjoint_partition(name: str) -> None:
    a = load_split(name, seed=3)
    b = load_split(name, seed=3)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    n = len(a.y_train) + len(a.y_val) + len(a.y_test)
    datasets = pytest.importorskip("sklearn.datasets")
    target = getattr(datasets, f"load_{name}")().target
    assert n == len(target)  # every row lands in exactly one part
    np.testing.assert_allclose(
        np.sort(np.concatenate([a.y_train, a.y_val, a.y_test])), np.sort(target)
    )
    assert abs(len(a.y_test) / n - 0.2) < 0.03 and abs(len(a.y_val) / n - 0.2) < 0.03
    np.testing.assert_allclose(a.X_train.mean(axis=0), 0.0, atol=1e-9)
    assert a.n_features == a.X_train.shape[1]


def test_different_seeds_give_different_splits() -> None:
    a, b = load_split("iris", seed=0), load_split("iris", seed=1)
    assert not np.array_equal(a.y_train, b.y_train)


def test_classification_splits_are_stratified() -> None:
    s = load_split("digits", seed=0)
    assert s.n_classes == 10
    counts = np.bincount(s.y_test, minlength=10)
    assert counts.min() >= 30 and counts.max() <= 40
    assert s.y_train.dtype == np.int64


def test_regression_split_and_torch_conversion() -> None:
    torch = pytest.importorskip("torch")
    s = load_split("diabetes", as_torch=True)
    assert s.n_classes == 0
    assert s.X_train.dtype == torch.float32 and s.y_train.dtype == torch.float32
    c = load_split("wine", as_torch=True)
    assert c.y_train.dtype == torch.int64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "mnist"}, "name must be one of"),
        ({"name": "iris", "val_size": 0.0}, "val_size"),
        ({"name": "iris", "test_size": 1.5}, "test_size"),
        ({"name": "iris", "val_size": 0.5, "test_size": 0.5}, "val_size \\+ test_size"),
    ],
)
def test_load_split_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_split(**kwargs)


def test_gaussian_mixture_shapes_and_separation() -> None:
    X, labels, means = gaussian_mixture(
        2000, n_components=4, n_features=5, separation=10.0, std=0.5, seed=1
    )
    assert X.shape == (2000, 5) and labels.shape == (2000,) and means.shape == (4, 5)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 10.0)
    nearest = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.99
    with pytest.raises(ValueError, match="weights"):
        gaussian_mixture(10, n_components=2, weights=np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="n_samples"):
        gaussian_mixture(0)


def test_teacher_student_recovers_teacher_by_least_squares() -> None:
    X, y, w = teacher_student_regression(5000, 8, noise=0.01, sparsity=0.5, seed=2)
    assert (w == 0).sum() == 4
    w_hat = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(w_hat, w, atol=1e-3)
    with pytest.raises(ValueError, match="sparsity"):
        teacher_student_regression(10, 2, sparsity=1.0)


def test_split_into_tasks_by_class_and_random() -> None:
    y = np.repeat(np.arange(10), 7)
    tasks = split_into_tasks(y, 3, by="class", seed=0)
    classes = [set(np.unique(y[t])) for t in tasks]
    assert sorted(len(c) for c in classes) == [3, 3, 4]
    assert set().union(*classes) == set(range(10))
    assert sum(len(t) for t in tasks) == y.size
    rand = split_into_tasks(y, 4, by="random", seed=0)
    assert np.array_equal(np.sort(np.concatenate(rand)), np.arange(y.size))
    with pytest.raises(ValueError, match="exceeds the number of classes"):
        split_into_tasks(y, 11)
    with pytest.raises(ValueError, match="by must be"):
        split_into_tasks(y, 2, by="other")  # type: ignore[arg-type]


def test_dirichlet_split_partitions_and_heterogeneity_follows_alpha() -> None:
    y = np.repeat(np.arange(10), 100)

    def spread(alpha: float) -> float:
        parts = dirichlet_split(y, 10, alpha=alpha, seed=0, min_size=5)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(y.size))
        hist = np.stack([np.bincount(y[p], minlength=10) / len(p) for p in parts])
        return float(hist.max(axis=1).mean())  # share of each client's main class

    assert spread(0.1) > spread(100.0) + 0.3
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_split(y, 3, alpha=0.0)
    with pytest.raises(ValueError, match="cannot give"):
        dirichlet_split(y[:5], 3, alpha=1.0, min_size=2)


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"papershelf\[plot\]"):
        require("definitely_not_a_module_xyz", extra="plot")
    assert require("numpy") is np

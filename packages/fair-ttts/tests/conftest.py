from __future__ import annotations

import numpy as np
import pytest
from fair_ttts.datasets import FairnessDataset, make_biased_classification
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier


@pytest.fixture(scope="session")
def biased() -> FairnessDataset:
    return make_biased_classification(3000, random_state=0)


@pytest.fixture(scope="session")
def split(biased: FairnessDataset) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(0).permutation(biased.y.size)
    return perm[:2000], perm[2000:]


@pytest.fixture(scope="session")
def tree(biased: FairnessDataset, split: tuple[np.ndarray, np.ndarray]) -> DecisionTreeClassifier:
    tr, _ = split
    return DecisionTreeClassifier(max_depth=6, min_samples_leaf=20, random_state=0).fit(
        biased.X[tr], biased.y[tr]
    )


@pytest.fixture(scope="session")
def forest(biased: FairnessDataset, split: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    tr, _ = split
    return RandomForestClassifier(
        n_estimators=15, max_depth=8, min_samples_leaf=5, random_state=0
    ).fit(biased.X[tr], biased.y[tr])


@pytest.fixture(scope="session")
def extra(biased: FairnessDataset, split: tuple[np.ndarray, np.ndarray]) -> ExtraTreesClassifier:
    tr, _ = split
    return ExtraTreesClassifier(n_estimators=10, max_depth=7, random_state=0).fit(
        biased.X[tr], biased.y[tr]
    )

"""Group membership: boolean matrices, named predicates on the features, and the always-on group.

Groups may intersect (a row can belong to any number of them). They are given either

* as a boolean **membership matrix** of shape ``(n_rows, n_groups)`` passed with the data
  (``groups=`` at call time), optionally named by a list of names given to the estimator, or
* as **named predicates**: a mapping ``name -> f`` where ``f(X)`` receives the 2-D feature array
  ``X`` of shape ``(n_rows, n_features)`` and returns a boolean array of shape ``(n_rows,)``
  (e.g. ``lambda X: X[:, 2] > 0.5``).

With ``always_on=True`` a group named ``"always_on"`` that contains every row is appended last,
as the official code does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

BoolArray = NDArray[np.bool_]
Predicate = Callable[[NDArray[np.float64]], ArrayLike]
GroupsSpec = Sequence[str] | Mapping[str, Predicate] | None
ALWAYS_ON = "always_on"

__all__ = [
    "ALWAYS_ON",
    "GroupsSpec",
    "Predicate",
    "as_membership",
    "check_groups_spec",
    "names_to_row",
]


def check_groups_spec(
    groups: Any, always_on: bool
) -> tuple[tuple[str, ...] | None, dict[str, Predicate] | None]:
    """Validate the estimator's ``groups`` argument; returns ``(names or None, predicates or None)``."""
    if groups is None:
        return None, None
    if isinstance(groups, Mapping):
        preds: dict[str, Predicate] = {}
        for name, fn in groups.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"groups keys must be non-empty strings, got {name!r}")
            if not callable(fn):
                raise TypeError(
                    f"groups[{name!r}] must be a callable predicate f(X) -> bool array, got {fn!r}"
                )
            preds[name] = fn
        _check_names(tuple(preds), always_on)
        return tuple(preds), preds
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise TypeError(
            f"groups must be None, a sequence of group names or a mapping name -> predicate, got {groups!r}"
        )
    names = tuple(groups)
    for n in names:
        if not isinstance(n, str) or not n:
            raise TypeError(f"groups must hold non-empty strings, got {n!r}")
    _check_names(names, always_on)
    return names, None


def _check_names(names: tuple[str, ...], always_on: bool) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"groups names must be unique, got {list(names)!r}")
    if always_on and ALWAYS_ON in names:
        raise ValueError(
            f"group name {ALWAYS_ON!r} is reserved for the always-on group (always_on=True)"
        )


def _as_bool_matrix(
    groups: ArrayLike, n_rows: int, n_groups: int | None, argument: str = "groups"
) -> BoolArray:
    A = np.asarray(groups)
    if A.ndim == 1 and n_rows == 1:
        A = A[None, :]
    if A.ndim != 2 or A.shape[0] != n_rows or (n_groups is not None and A.shape[1] != n_groups):
        want = f"({n_rows}, {n_groups if n_groups is not None else 'n_groups'})"
        raise ValueError(
            f"{argument} must be a membership matrix of shape {want}, got shape {A.shape}"
        )
    if A.dtype == np.bool_:
        return A
    if A.dtype.kind not in "iuf":
        raise TypeError(f"{argument} must be boolean or 0/1 numbers, got dtype {A.dtype}")
    if not np.all((A == 0) | (A == 1)):
        bad = A[(A != 0) & (A != 1)].ravel()[:3]
        raise ValueError(
            f"{argument} must hold only 0/1 (or booleans), found values such as {bad.tolist()!r}"
        )
    return A.astype(bool)


def as_membership(
    X: NDArray[np.float64],
    groups: ArrayLike | None,
    *,
    names: tuple[str, ...] | None,
    predicates: dict[str, Predicate] | None,
    n_groups: int | None,
    always_on: bool,
) -> BoolArray:
    """The full membership matrix ``(n_rows, n_user_groups [+ 1])`` for rows ``X``.

    ``n_groups`` is the number of user groups fixed by an earlier call (``None`` on the first).
    """
    n = X.shape[0]
    if predicates is not None:
        if groups is not None:
            raise ValueError(
                "groups= must be None when the estimator was built with named predicates"
            )
        cols = []
        for name, fn in predicates.items():
            col = np.asarray(fn(X))
            if col.shape != (n,):
                raise ValueError(f"predicate {name!r} must return shape ({n},), got {col.shape}")
            if col.dtype != np.bool_:
                if col.dtype.kind not in "iuf" or not np.all((col == 0) | (col == 1)):
                    raise TypeError(
                        f"predicate {name!r} must return booleans, got dtype {col.dtype}"
                    )
                col = col.astype(bool)
            cols.append(col)
        A = np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=bool)
    elif groups is None:
        expected = n_groups if n_groups is not None else (len(names) if names is not None else 0)
        if expected:
            raise ValueError(f"groups= is required: a membership matrix of shape ({n}, {expected})")
        if not always_on:
            raise ValueError(
                "no groups: pass groups= (a membership matrix) or build the estimator with always_on=True"
            )
        A = np.zeros((n, 0), dtype=bool)
    else:
        fixed = n_groups if n_groups is not None else (len(names) if names is not None else None)
        A = _as_bool_matrix(groups, n, fixed)
    if always_on:
        A = np.concatenate([A, np.ones((n, 1), dtype=bool)], axis=1)
    return A


def names_to_row(groups: Collection[str], names: tuple[str, ...]) -> BoolArray:
    """A one-row membership vector from a collection of group names (unknown names raise)."""
    known = set(names)
    row = np.zeros(len(names), dtype=bool)
    for g in groups:
        if g not in known:
            raise ValueError(f"unknown group name {g!r}; known groups: {list(names)!r}")
        row[names.index(g)] = True
    return row

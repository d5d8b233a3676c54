"""Input checks shared by every metric: binary labels, probabilities, weights.

Everything that enters the package passes through :func:`check_binary`, which raises a
``ValueError``/``TypeError`` naming the argument and the offending value. Nothing is clipped,
nothing is modified in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: largest tolerated deviation of a two-column ``predict_proba`` row sum from 1
ROW_SUM_TOL = 1e-5

_ONE_BITS = int(np.array(1.0).view(np.uint64))


def as_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a numpy array; torch tensors (any device, any float dtype) are detached to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        t = x.detach().cpu()
        try:
            return np.asarray(t.numpy())
        except TypeError:  # bfloat16 / float16 have no numpy twin in some versions
            return np.asarray(t.float().numpy())
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be array-like, got {type(x).__name__} {x!r}")
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged input
        raise TypeError(f"{name} must be a rectangular array-like, got {type(x).__name__}") from exc


def _first_bad(mask: np.ndarray, values: np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[0])
    return f"{values.reshape(len(values), -1)[i].tolist()!r} at index {i}"


def check_probabilities(y_prob: Any, name: str = "y_prob") -> FloatArray:
    """P(positive) as a 1-D float64 array from a 1-D, an ``(n, 1)`` or a two-column array.

    A two-column array is read as ``predict_proba`` output ordered (negative, positive); its rows
    must sum to 1 (within ``1e-5``) and column 1 is returned.
    """
    q = as_array(y_prob, name)
    if q.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {q.dtype}")
    if q.ndim == 2 and q.shape[1] in (1, 2):
        cols = q.shape[1]
    elif q.ndim == 1:
        cols = 0
    else:
        raise ValueError(
            f"{name} must be 1-D P(positive) or a two-column predict_proba array, got shape {q.shape}"
        )
    if q.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    q = q.astype(np.float64, copy=False)
    # one pass: as unsigned integers, the bit patterns of +0.0 .. 1.0 are exactly 0 .. bits(1.0);
    # negatives (even -0.0), NaN and inf are all larger. Only if that fails, look closer.
    if int(q.view(np.uint64).max()) <= _ONE_BITS:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = float(q.min()), float(q.max())
    if not (lo >= 0.0 and hi <= 1.0):  # False for NaN as well
        nan = np.isnan(q)
        if nan.any():
            raise ValueError(
                f"{name} contains NaN ({_first_bad(nan.any(axis=-1) if q.ndim == 2 else nan, q)})"
            )
        bad: np.ndarray = (q < 0) | (q > 1)
        if q.ndim == 2:
            bad = np.asarray(bad.any(axis=-1))
        raise ValueError(
            f"{name} must lie in [0, 1] (no clipping is done), got {_first_bad(bad, q)}"
        )
    if cols == 2:
        dev = np.abs(q[:, 0] + q[:, 1] - 1.0)
        if float(dev.max()) > ROW_SUM_TOL:
            raise ValueError(
                f"{name} has two columns but its rows do not sum to 1 (not predict_proba output?): "
                f"row {_first_bad(dev > ROW_SUM_TOL, q)}"
            )
        return np.ascontiguousarray(q[:, 1])
    if cols == 1:
        return q[:, 0]
    return q


def _is_set(values: np.ndarray, allowed: tuple[float, ...]) -> bool:
    ok = np.zeros(values.shape, dtype=bool)
    for a in allowed:
        ok |= values == a
    return bool(ok.all())


def check_labels(
    y_true: Any, pos_label: Any, name: str = "y_true", *, as_float: bool = True
) -> NDArray[Any]:
    """Binary labels as a float64 0/1 array (1 = ``pos_label``).

    With ``pos_label=None`` the labels must be a subset of {0, 1} or {-1, 1} (or booleans), and 1
    (``True``) is positive, as in scikit-learn. Any other pair of labels needs ``pos_label``.
    ``as_float=False``: 0/1 integer or boolean labels are returned as they are (no float copy);
    the caller converts them chunk by chunk.
    """
    y = as_array(y_true, name)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    numeric = y.dtype.kind in "biuf"
    if pos_label is None:
        if y.dtype.kind == "b":
            return y if not as_float else y.astype(np.float64)
        if y.dtype.kind in "iu" and int(y.view(f"u{y.dtype.itemsize}").max()) <= 1:
            # one pass: as unsigned, exactly the labels 0 and 1 are <= 1 (negatives wrap around)
            return y if not as_float else y.astype(np.float64)
        if not numeric:
            labels = np.unique(y)
            raise ValueError(
                f"{name} has non-numeric labels {labels[:5].tolist()!r}; pass pos_label to say which is positive"
            )
        lo, hi = y.min(), y.max()
        integer = y.dtype.kind in "iu"
        if lo >= 0 and hi <= 1 and (integer or _is_set(y, (0, 1))):  # ints in [0, 1] are 0/1
            return y.astype(np.float64, copy=False)
        if lo >= -1 and hi <= 1 and _is_set(y, (-1, 1)):
            return np.asarray(y == 1, dtype=np.float64)
        labels = np.unique(y[~np.isnan(y)] if y.dtype.kind == "f" else y)
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError(f"{name} contains NaN ({_first_bad(np.isnan(y), y)})")
        if labels.size > 2:
            raise ValueError(
                f"{name} must be binary, got {labels.size} distinct labels {labels[:5].tolist()!r}..."
            )
        raise ValueError(
            f"{name} has labels {labels.tolist()!r}, not a subset of {{0, 1}} or {{-1, 1}}; pass pos_label"
        )
    if numeric and y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"{name} contains NaN ({_first_bad(np.isnan(y), y)})")
    labels = np.unique(y)
    if labels.size > 2:
        raise ValueError(
            f"{name} must be binary, got {labels.size} distinct labels {labels[:5].tolist()!r}..."
        )
    try:
        present = bool(np.any(labels == pos_label))
    except (TypeError, ValueError):
        present = False
    if labels.size == 2 and not present:
        raise ValueError(
            f"pos_label={pos_label!r} is not one of the labels {labels.tolist()!r} in {name}"
        )
    return np.asarray(y == pos_label, dtype=np.float64)


def check_weights(sample_weight: Any, n: int) -> FloatArray | None:
    """Non-negative finite weights of length ``n`` with a positive sum, or ``None``."""
    if sample_weight is None:
        return None
    w = as_array(sample_weight, "sample_weight")
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold real numbers, got dtype {w.dtype}")
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"sample_weight must be 1-D of length {n} (the number of samples), got shape {w.shape}"
        )
    w = w.astype(np.float64, copy=False)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise ValueError(f"sample_weight must be finite and non-negative, got {_first_bad(bad, w)}")
    if not float(w.sum()) > 0:
        raise ValueError("sample_weight sums to 0: at least one sample needs a positive weight")
    return w


def check_binary(
    y_true: Any, y_prob: Any, *, pos_label: Any = None, sample_weight: Any = None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Validate one binary problem: ``(y, q, w)`` with y in {0., 1.}, q = P(positive) in [0, 1]."""
    q = check_probabilities(y_prob)
    y = check_labels(y_true, pos_label)
    if y.shape[0] != q.shape[0]:
        raise ValueError(f"y_true and y_prob have different lengths: {y.shape[0]} and {q.shape[0]}")
    return y, q, check_weights(sample_weight, y.shape[0])


def check_binary_raw(
    y_true: Any, y_prob: Any, *, pos_label: Any = None, sample_weight: Any = None
) -> tuple[NDArray[Any], FloatArray, FloatArray | None]:
    """:func:`check_binary`, but 0/1 integer or boolean labels are not copied to float64: for
    the chunked kernels, which convert each chunk (same checks, same errors)."""
    q = check_probabilities(y_prob)
    y = check_labels(y_true, pos_label, as_float=False)
    if y.shape[0] != q.shape[0]:
        raise ValueError(f"y_true and y_prob have different lengths: {y.shape[0]} and {q.shape[0]}")
    return y, q, check_weights(sample_weight, y.shape[0])


def check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(
        threshold, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"threshold must be a real number in [0, 1], got {threshold!r}")
    t = float(threshold)
    if not 0.0 <= t <= 1.0:  # False for NaN
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    return t


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def weighted_mean(values: FloatArray, w: FloatArray | None) -> float:
    if w is None:
        return float(values.mean())
    return float(np.dot(values, w) / w.sum())

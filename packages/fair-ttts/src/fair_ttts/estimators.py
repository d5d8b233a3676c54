"""scikit-learn wrappers: :class:`TTTSClassifier` and :class:`FairTTTSClassifier`.

Both post-process a fitted ``DecisionTreeClassifier``, ``ExtraTreeClassifier``,
``RandomForestClassifier`` or ``ExtraTreesClassifier``: ``fit`` stores training statistics (the
per-feature scales the flip probabilities use) and never retrains the trees (unless
``prefit=False``); ``predict_proba`` runs the randomised walk of :mod:`fair_ttts.functional`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fair_ttts.functional import (
    DEFAULT_P_MAX,
    HEURISTICS,
    Boost,
    CompiledForest,
    compile_trees,
    flip_parameters,
    more_negative_child,
    propagate,
)

METHODS = ("monte_carlo", "exact")
DISTANCE_SCALES = ("feature_range", "tree_max_abs_threshold")
_SUPPORTED = (DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier)


class FairnessBoostWarning(UserWarning):
    """The FairTTTS fairness boost can never change a prediction for this model and data."""


def _check_random_state(random_state: Any) -> np.random.Generator:
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)  # a Generator passes through unchanged
    if (
        isinstance(random_state, numbers.Integral)
        and not isinstance(random_state, bool)
        and int(random_state) >= 0
    ):
        return np.random.default_rng(int(random_state))
    raise ValueError(
        f"random_state must be None, a non-negative int or a numpy Generator, got {random_state!r}"
    )


class TTTSClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Tree Test Time Simulation (TTTS) around a fitted scikit-learn tree or forest.

    At every internal node the walk takes the other child with probability
    :math:`p_v(x) = \\mathrm{clip}(a_v - b_v|x_{f_v} - c_v|, 0, 1/2)` (see
    :func:`fair_ttts.functional.flip_parameters` for each heuristic); the prediction averages
    the reached leaves' class distributions over simulations and trees.

    Args:
        estimator: a ``DecisionTreeClassifier``/``ExtraTreeClassifier``/``RandomForestClassifier``/
            ``ExtraTreesClassifier``, fitted unless ``prefit=False`` (a ``FrozenEstimator`` around
            one is unwrapped).
        heuristic: ``"distance"`` (default, as in FairTTTS), ``"fixed"``, ``"depth"``,
            ``"agreement"`` or ``"confidence"``.
        n_simulations: walks per sample and tree for ``method="monte_carlo"`` (S, default 100).
        method: ``"monte_carlo"`` (the paper's estimator) or ``"exact"`` (its expectation, the
            S -> infinity limit; deterministic, cost grows with the number of nodes reachable
            with non-zero probability).
        p_max: largest flip probability of the heuristic, in [0, 0.5]; ``None`` uses the official
            code's value (distance 0.1, fixed 0.2, depth 0.2, agreement 0.5, confidence 0.1).
        depth_rate: r of the depth heuristic, p = min(r * depth, p_max).
        distance_scale: the width :math:`w_v` at which the distance heuristic's p reaches 0.
            ``"feature_range"`` (default): the feature's training range (max - min), so the rule
            does not depend on units and a 0/1 attribute (distance 1/2 to its threshold) gets
            p = p_max / 2. ``"tree_max_abs_threshold"``: the official rule
            p = max(p_max - d / D, 0) with D the largest |threshold| of the tree. A positive
            number or an array of one width per feature sets the widths directly.
        prefit: if True, ``estimator`` must already be fitted and ``fit`` only stores training
            statistics; if False, ``fit`` fits a clone of it on ``(X, y)`` first.
        random_state: seed or ``numpy.random.Generator`` of the Monte Carlo walks. An int gives
            the same draws on every call.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        heuristic: str = "distance",
        n_simulations: int = 100,
        method: str = "monte_carlo",
        p_max: float | None = None,
        depth_rate: float = 0.05,
        distance_scale: str | float | Any = "feature_range",
        prefit: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.estimator = estimator
        self.heuristic = heuristic
        self.n_simulations = n_simulations
        self.method = method
        self.p_max = p_max
        self.depth_rate = depth_rate
        self.distance_scale = distance_scale
        self.prefit = prefit
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        if self.heuristic not in HEURISTICS:
            raise ValueError(f"heuristic must be one of {HEURISTICS}, got {self.heuristic!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        n = self.n_simulations
        if not isinstance(n, numbers.Integral) or isinstance(n, bool):
            raise TypeError(f"n_simulations must be an int, got {n!r}")
        if n < 1:
            raise ValueError(f"n_simulations must be >= 1, got {n!r}")
        if self.p_max is not None and not (
            isinstance(self.p_max, numbers.Real) and 0.0 <= self.p_max <= 0.5
        ):
            raise ValueError(f"p_max must be None or a number in [0, 0.5], got {self.p_max!r}")
        if not (isinstance(self.depth_rate, numbers.Real) and self.depth_rate >= 0):
            raise ValueError(f"depth_rate must be a non-negative number, got {self.depth_rate!r}")
        if not isinstance(self.prefit, bool):
            raise TypeError(f"prefit must be a bool, got {self.prefit!r}")
        _check_random_state(self.random_state)

    def _fitted_estimator(self, X: np.ndarray, y: Any) -> Any:
        est = self.estimator
        if type(est).__name__ == "FrozenEstimator" and hasattr(est, "estimator"):
            est = est.estimator
        if not isinstance(est, _SUPPORTED):
            raise TypeError(
                "estimator must be a DecisionTreeClassifier, ExtraTreeClassifier, RandomForestClassifier "
                f"or ExtraTreesClassifier, got {type(est).__name__}"
            )
        if not self.prefit:
            if y is None:
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None "
                    "(prefit=False fits the estimator on (X, y))"
                )
            return clone(est).fit(X, y)
        try:
            check_is_fitted(est)
        except NotFittedError:
            raise NotFittedError(
                f"estimator {type(est).__name__} is not fitted; fit it first or pass prefit=False"
            ) from None
        return est

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None) -> TTTSClassifier:
        """Store the training statistics the flip probabilities use (and fit the estimator when
        ``prefit=False``). ``X`` is the data the trees were trained on (or any sample of it)."""
        self._validate_params()
        X_arr = validate_data(self, X, reset=True, dtype=np.float64, ensure_min_samples=1)
        if y is not None:
            y = column_or_1d(y, warn=True)
            if y.shape[0] != X_arr.shape[0]:
                raise ValueError(f"y must have {X_arr.shape[0]} entries like X, got {y.shape[0]}")
        est = self._fitted_estimator(X if not self.prefit else X_arr, y)
        n_outputs = getattr(est, "n_outputs_", 1)
        if n_outputs != 1:
            raise ValueError(f"estimator must be single-output, got n_outputs_={n_outputs}")
        if est.n_features_in_ != self.n_features_in_:
            raise ValueError(
                f"X has {self.n_features_in_} features but the estimator was fitted with {est.n_features_in_}"
            )
        est_names = getattr(est, "feature_names_in_", None)
        if (
            est_names is not None
            and hasattr(self, "feature_names_in_")
            and list(est_names) != list(self.feature_names_in_)
        ):
            raise ValueError("X's column names differ from the estimator's feature_names_in_")
        self.classes_ = est.classes_
        if y is not None and self.prefit:
            unknown = np.setdiff1d(np.unique(y), self.classes_)
            if unknown.size:
                raise ValueError(
                    f"y contains labels {unknown.tolist()} that the estimator does not know ({self.classes_.tolist()})"
                )
        self.estimator_ = est
        trees = (
            [est.tree_]
            if isinstance(est, DecisionTreeClassifier)
            else [t.tree_ for t in est.estimators_]
        )
        self.forest_: CompiledForest = compile_trees(trees)
        X32 = X_arr.astype(np.float32).astype(np.float64)
        self.feature_min_ = X32.min(axis=0)
        self.feature_max_ = X32.max(axis=0)
        self.feature_mean_ = X32.mean(axis=0)
        self.feature_std_ = X32.std(axis=0)
        self.p_max_ = float(DEFAULT_P_MAX[self.heuristic] if self.p_max is None else self.p_max)
        self.flip_params_ = self._flip_params()
        self._fit_extra(X32)
        return self

    def _fit_extra(self, X32: np.ndarray) -> None:
        """Hook for subclasses (FairTTTS resolves the protected attribute here)."""

    def _node_widths(self) -> np.ndarray:
        f = self.forest_
        internal = f.is_internal
        feat = np.where(internal, f.feature, 0)
        scale = self.distance_scale
        if isinstance(scale, str):
            if scale == "feature_range":
                rng = self.feature_max_ - self.feature_min_
                per_feature = np.where(rng > 0, rng, 1.0)
                return np.where(internal, per_feature[feat], 1.0)
            if scale == "tree_max_abs_threshold":
                abs_t = np.where(internal, np.abs(f.threshold), 0.0)
                d = np.zeros(f.n_trees)
                np.maximum.at(d, f.tree, abs_t)
                d = np.where(d > 0, d, 1.0)  # official: 1.0 when the tree has no split
                return (
                    np.where(internal, self.p_max_ * d[f.tree], 1.0)
                    if self.p_max_ > 0
                    else np.ones(f.n_nodes)
                )
            raise ValueError(
                f"distance_scale must be one of {DISTANCE_SCALES}, a positive number or an array, got {scale!r}"
            )
        arr = np.asarray(scale, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full(self.n_features_in_, float(arr))
        if arr.shape != (self.n_features_in_,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(
                f"distance_scale must be a positive number or {self.n_features_in_} positive widths, got {scale!r}"
            )
        return np.where(internal, arr[feat], 1.0)

    def _flip_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        widths = self._node_widths() if self.heuristic == "distance" else None
        return flip_parameters(
            self.forest_,
            self.heuristic,
            p_max=self.p_max_,
            depth_rate=float(self.depth_rate),
            widths=widths,
            center=self.feature_mean_,
            spread=self.feature_std_ + 1e-9,
        )

    # ------------------------------------------------------------------ predict
    def _prepare(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X_arr = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(X_arr.astype(np.float32), dtype=np.float64)  # the values sklearn compares

    def _boost(self, X32: np.ndarray) -> Boost | None:
        return None

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        X32 = self._prepare(X)
        rng = _check_random_state(self.random_state) if self.method == "monte_carlo" else None
        return propagate(
            self.forest_,
            X32,
            self.flip_params_,
            method=self.method,  # type: ignore[arg-type]
            n_simulations=int(self.n_simulations),
            rng=rng,
            boost=self._boost(X32),
        )

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest ``predict_proba`` (first one on ties, as scikit-learn)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]  # type: ignore[no-any-return]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.method == "monte_carlo" and self.random_state is None
        return tags


class FairTTTSClassifier(TTTSClassifier):
    """FairTTTS: TTTS plus a fairness boost on splits of the protected attribute.

    At a node that splits on the protected attribute, a sample of the unprivileged group whose
    natural child is the *more negative* child (larger unfavourable-class rate; ties left) flips
    with probability :math:`\\min(\\alpha\\,p_v(x), 1/2)` instead of :math:`p_v(x)`. Everything
    else is :class:`TTTSClassifier`.

    Args:
        estimator: a fitted tree or forest (see :class:`TTTSClassifier`).
        protected_attribute: column index, or column name when the data has feature names. It
            must be a model input taking exactly two values in the training data.
        unprivileged_value: the protected attribute's value of the unprivileged group (compared
            exactly, after scikit-learn's float32 cast).
        favorable_class: the favourable outcome label (must be in ``classes_``).
        alpha: the boost factor (paper: 9; official scripts' default 2; README suggests 5-10).
        direction_by: ``"rate"`` compares the children's unfavourable rates (the official code on
            scikit-learn >= 1.4), ``"count"`` their weighted unfavourable counts (on < 1.4).
        Other arguments as :class:`TTTSClassifier`.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        protected_attribute: int | str,
        unprivileged_value: float,
        favorable_class: Any,
        alpha: float = 9.0,
        direction_by: str = "rate",
        heuristic: str = "distance",
        n_simulations: int = 100,
        method: str = "monte_carlo",
        p_max: float | None = None,
        depth_rate: float = 0.05,
        distance_scale: str | float | Any = "feature_range",
        prefit: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(
            estimator,
            heuristic=heuristic,
            n_simulations=n_simulations,
            method=method,
            p_max=p_max,
            depth_rate=depth_rate,
            distance_scale=distance_scale,
            prefit=prefit,
            random_state=random_state,
        )
        self.protected_attribute = protected_attribute
        self.unprivileged_value = unprivileged_value
        self.favorable_class = favorable_class
        self.alpha = alpha
        self.direction_by = direction_by

    def _validate_params(self) -> None:
        super()._validate_params()
        if not (
            isinstance(self.alpha, numbers.Real) and np.isfinite(self.alpha) and self.alpha > 0
        ):
            raise ValueError(f"alpha must be a positive finite number, got {self.alpha!r}")
        if self.direction_by not in ("rate", "count"):
            raise ValueError(f"direction_by must be 'rate' or 'count', got {self.direction_by!r}")
        if not isinstance(self.unprivileged_value, numbers.Real) or isinstance(
            self.unprivileged_value, bool
        ):
            raise TypeError(f"unprivileged_value must be a number, got {self.unprivileged_value!r}")

    def _resolve_protected(self) -> int:
        attr = self.protected_attribute
        if isinstance(attr, str):
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    f"protected_attribute={attr!r} is a name but the data has no feature names; pass a column index"
                )
            hits = np.flatnonzero(np.asarray(names) == attr)
            if hits.size == 0:
                raise ValueError(
                    f"protected_attribute={attr!r} is not a feature name (features: {list(names)})"
                )
            return int(hits[0])
        if isinstance(attr, numbers.Integral) and not isinstance(attr, bool):
            if not 0 <= attr < self.n_features_in_:
                raise ValueError(
                    f"protected_attribute={attr!r} is outside the {self.n_features_in_} features"
                )
            return int(attr)
        raise TypeError(f"protected_attribute must be a column index or name, got {attr!r}")

    def _fit_extra(self, X32: np.ndarray) -> None:
        idx = self._resolve_protected()
        values = np.unique(X32[:, idx])
        u = float(np.float32(self.unprivileged_value))
        if values.size != 2:
            raise ValueError(
                f"protected_attribute={self.protected_attribute!r} must be binary, but it takes {values.size} "
                f"values in X (e.g. {values[:5].tolist()})"
            )
        if u not in values:
            raise ValueError(
                f"unprivileged_value={self.unprivileged_value!r} does not occur in protected_attribute "
                f"{self.protected_attribute!r} (values {values.tolist()})"
            )
        fav = np.flatnonzero(self.classes_ == self.favorable_class)
        if fav.size != 1:
            raise ValueError(
                f"favorable_class={self.favorable_class!r} is not one of classes_ {self.classes_.tolist()}"
            )
        self.protected_index_ = idx
        self.protected_values_ = values
        self.favorable_index_ = int(fav[0])
        f = self.forest_
        child = more_negative_child(f, self.favorable_index_, by=self.direction_by)
        on_protected = f.is_internal & (f.feature == idx)
        self.boost_child_ = np.where(on_protected, child, -1)
        self.n_protected_splits_ = int(on_protected.sum())
        if self.n_protected_splits_ == 0:
            warnings.warn(
                f"no tree splits on protected_attribute={self.protected_attribute!r}: the fairness boost never "
                "fires and FairTTTSClassifier equals TTTSClassifier",
                FairnessBoostWarning,
                stacklevel=3,
            )
            return
        a, b, c = self.flip_params_
        nodes = np.flatnonzero(on_protected)
        p_unpriv = np.clip(a[nodes] - b[nodes] * np.abs(u - c[nodes]), 0.0, 0.5)
        if not np.any(p_unpriv > 0):
            warnings.warn(
                f"the flip probability at every split on protected_attribute={self.protected_attribute!r} is 0 for "
                f"the unprivileged value {self.unprivileged_value!r} (heuristic={self.heuristic!r}, "
                f"distance_scale={self.distance_scale!r}), so the fairness boost alpha * p never fires",
                FairnessBoostWarning,
                stacklevel=3,
            )

    def _boost(self, X32: np.ndarray) -> Boost:
        col = X32[:, self.protected_index_]
        unseen = ~np.isin(col, self.protected_values_)
        if unseen.any():
            raise ValueError(
                f"protected_attribute={self.protected_attribute!r} has values {np.unique(col[unseen])[:5].tolist()} "
                f"not seen at fit (expected {self.protected_values_.tolist()})"
            )
        unpriv = col == float(np.float32(self.unprivileged_value))
        return Boost(alpha=float(self.alpha), child=self.boost_child_, unprivileged=unpriv)

r"""``GroupwiseRegressor`` / ``GroupwiseClassifier``: the oracle-efficient groupwise-regret reduction.

One copy of an external-regret learner per group (plus an always-on group), each seeing only the
rounds where its group is active, mixed by AdaNormalHedge over sleeping experts (see
:mod:`groupwise_regret.functional` for the exact update). Per round:

1. the awake copies output :math:`o_g = f_g(x_t)`; predictions :math:`\hat y_g` are :math:`o_g`
   clipped into ``y_range`` (``clip=True``), or :math:`\sigma(o_g)` for logit learners with the
   logistic loss;
2. :math:`p_t` = AdaNormalHedge's distribution over the awake copies;
3. the estimator predicts :math:`\sum_g p_{t,g}\hat y_g` (``prediction="mean"``, deterministic;
   never worse than a random draw for a convex loss, by Jensen) or the prediction of one copy
   drawn from :math:`p_t` (``prediction="sample"``, the paper's randomised learner);
4. the label arrives; each awake copy's bounded loss :math:`\ell_{t,g}` and the expected loss
   :math:`\hat\ell_t = p_t^\top\ell_t` update :math:`R, C`; each awake copy learns :math:`(x_t, y_t)`.

Cost per row: :math:`O(|G_t|\cdot\text{oracle}) + O(|G_t|)`, linear in the number of active
groups and independent of the size of the hypothesis class.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from groupwise_regret.functional import anh_log_weight_scalar, anh_log_weights
from groupwise_regret.groups import (
    ALWAYS_ON,
    GroupsSpec,
    as_membership,
    check_groups_spec,
    names_to_row,
)
from groupwise_regret.learners import Bank, OnlineGradientDescent, OnlineRidge, make_bank
from groupwise_regret.losses import LossName, bounded_loss, check_loss, sigmoid
from papershelf.devices import numpy_rng

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["GroupwiseClassifier", "GroupwiseRegressor", "StreamRecord"]

_E = TypeVar("_E", bound="GroupwiseRegressor")


@dataclass(frozen=True)
class StreamRecord:
    """What happened on each row of a stream (predictions made *before* each label was seen).

    Attributes:
        prediction: the estimator's prediction per row ``(n,)`` (a probability for logistic loss).
        loss: bounded loss of ``prediction`` per row.
        expected_loss: :math:`\\hat\\ell_t = p_t^\\top \\ell_t`, AdaNormalHedge's expected loss (the
            quantity of the paper's bound and of the official evaluation; 0 on rows with no group).
        expert_loss: bounded loss of each awake copy ``(n, G)``, NaN where asleep.
        weights: :math:`p_t` per row ``(n, G)``.
        membership: the membership matrix used ``(n, G)``, always-on column included.
        group_names: names of the ``G`` columns.
    """

    prediction: FloatArray
    loss: FloatArray
    expected_loss: FloatArray
    expert_loss: FloatArray
    weights: FloatArray
    membership: BoolArray
    group_names: tuple[str, ...]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:  # arrays and other objects without a boolean ==
        return False


class _ParamsMixin:
    """scikit-learn's ``get_params`` / ``set_params`` contract without importing scikit-learn."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self._param_names()}
        if deep:
            for k, v in list(out.items()):
                if hasattr(v, "get_params") and not isinstance(v, type):
                    out.update({f"{k}__{kk}": vv for kk, vv in v.get_params().items()})
        return out

    def set_params(self, **params: Any) -> Any:
        valid = self._param_names()
        for k, v in params.items():
            head, _, sub = k.partition("__")
            if head not in valid:
                raise ValueError(
                    f"invalid parameter {head!r} for {type(self).__name__}; valid: {valid}"
                )
            if sub:
                getattr(self, head).set_params(**{sub: v})
            else:
                setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = [
            f"{k}={getattr(self, k)!r}"
            for k, p in sig.parameters.items()
            if k != "self"
            and not (getattr(self, k) is p.default or _same(getattr(self, k), p.default))
        ]
        return f"{type(self).__name__}({', '.join(parts)})"


def _check_X(X: ArrayLike, n_features: int | None, argument: str = "X") -> FloatArray:
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim != 2:
        raise ValueError(
            f"{argument} must be a 2-D array (n_rows, n_features), got shape {Xa.shape}"
        )
    if Xa.shape[0] == 0:
        raise ValueError(f"{argument} must have at least one row, got shape {Xa.shape}")
    if n_features is not None and Xa.shape[1] != n_features:
        raise ValueError(
            f"{argument} has {Xa.shape[1]} features, but the estimator was fitted with {n_features}"
        )
    if not np.all(np.isfinite(Xa)):
        raise ValueError(
            f"{argument} must be finite; found NaN or inf at rows {np.flatnonzero(~np.isfinite(Xa).all(axis=1))[:5].tolist()}"
        )
    return Xa


class GroupwiseRegressor(_ParamsMixin):
    r"""Online learning with regret guarantees for every group (Acharya et al., ICLR 2024).

    Args:
        learner: the external-regret oracle, copied once per group; default
            :class:`~groupwise_regret.OnlineRidge` with ``alpha=1.0`` (the official code's).
        groups: ``None`` (a membership matrix is passed as ``groups=`` with the data; columns named
            ``g0, g1, ...``), a sequence of names for those columns, or a mapping
            ``name -> predicate(X) -> bool array`` evaluated on the features.
        always_on: append the always-on group (named ``"always_on"``) — the official setup.
        loss: ``"squared"`` (default), ``"absolute"`` or ``"logistic"`` (labels in {0, 1}).
        y_range: ``(low, high)`` of the labels; losses are divided by ``high - low`` (squared: its
            square) so that they lie in [0, 1] as AdaNormalHedge's analysis assumes.
        clip: clip each copy's prediction into ``y_range`` (the paper's bounded-loss setting).
            ``clip=False`` with ``y_range=(0, 1)`` reproduces the official final runs.
        proba_eps: probabilities are clipped into ``[proba_eps, 1 - proba_eps]`` for the logistic
            loss, which is divided by ``log(1/proba_eps)``.
        prediction: ``"mean"`` (the :math:`p_t`-weighted mean, deterministic) or ``"sample"`` (a copy
            drawn from :math:`p_t`). The aggregator's update always uses the expected loss.
        random_state: seed or ``numpy.random.Generator`` for ``prediction="sample"``.

    Fitted attributes (after the first ``partial_fit`` / ``learn_one``):
        n_features_in_, group_names_, n_groups_, experts_ (the bank of copies), regret_ (:math:`R`),
        abs_regret_ (:math:`C`), weights_ (the last :math:`p_t`), group_counts_ (rounds per group),
        group_loss_ (cumulative expected loss per group), n_rounds_.
    """

    def __init__(
        self,
        learner: Any = None,
        groups: GroupsSpec = None,
        *,
        always_on: bool = True,
        loss: LossName = "squared",
        y_range: tuple[float, float] = (0.0, 1.0),
        clip: bool = True,
        proba_eps: float = 1e-3,
        prediction: Literal["mean", "sample"] = "mean",
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.learner = learner
        self.groups = groups
        self.always_on = always_on
        self.loss = loss
        self.y_range = y_range
        self.clip = clip
        self.proba_eps = proba_eps
        self.prediction = prediction
        self.random_state = random_state

    # ------------------------------------------------------------------ validation and setup
    def _default_learner(self) -> Any:
        return OnlineRidge(alpha=1.0)

    def _validate_params(self) -> None:
        if not isinstance(self.always_on, bool):
            raise TypeError(f"always_on must be a bool, got {self.always_on!r}")
        check_loss(self.loss)
        try:
            lo, hi = (float(v) for v in self.y_range)
        except (TypeError, ValueError):
            raise ValueError(f"y_range must be a pair (low, high), got {self.y_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"y_range must be finite with low < high, got {self.y_range!r}")
        if not isinstance(self.clip, bool):
            raise TypeError(f"clip must be a bool, got {self.clip!r}")
        if not (isinstance(self.proba_eps, (int, float)) and 0.0 < self.proba_eps < 0.5):
            raise ValueError(f"proba_eps must be in (0, 0.5), got {self.proba_eps!r}")
        if self.prediction not in ("mean", "sample"):
            raise ValueError(f"prediction must be 'mean' or 'sample', got {self.prediction!r}")
        self._names_spec, self._predicates = check_groups_spec(self.groups, self.always_on)

    def _is_fitted(self) -> bool:
        return hasattr(self, "experts_")

    def _setup(self, X: FloatArray, A: BoolArray) -> None:
        n_user = A.shape[1] - int(self.always_on)
        if self._names_spec is not None:
            names = self._names_spec
        else:
            names = tuple(f"g{i}" for i in range(n_user))
        names = names + ((ALWAYS_ON,) if self.always_on else ())
        learner = self.learner if self.learner is not None else self._default_learner()
        bank = make_bank(learner, len(names), X.shape[1])
        if self.loss != "logistic" and bank.link != "identity":
            raise ValueError(
                f"learner with link={bank.link!r} outputs logits; it needs loss='logistic', got loss={self.loss!r}"
            )
        self.n_features_in_ = X.shape[1]
        self.group_names_ = names
        self.n_groups_ = len(names)
        self.experts_: Bank = bank
        self.regret_ = np.zeros(len(names))
        self.abs_regret_ = np.zeros(len(names))
        self.weights_ = np.full(len(names), 1.0 / len(names))
        self.group_counts_ = np.zeros(len(names), dtype=np.int64)
        self.group_loss_ = np.zeros(len(names))
        self.n_rounds_ = 0
        self._rng = numpy_rng(self.random_state)
        self._lo, self._hi = (float(v) for v in self.y_range)

    def _check_y(self, y: ArrayLike, n: int) -> FloatArray:
        ya = np.asarray(y, dtype=np.float64)
        if ya.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {ya.shape}")
        if not np.all(np.isfinite(ya)):
            raise ValueError(
                f"y must be finite; found NaN or inf at rows {np.flatnonzero(~np.isfinite(ya))[:5].tolist()}"
            )
        if self.loss == "logistic":
            if not np.all((ya == 0) | (ya == 1)):
                raise ValueError(
                    f"y must hold 0/1 labels for loss='logistic', got values such as {np.unique(ya)[:5].tolist()}"
                )
        elif self.clip and (ya.min() < float(self.y_range[0]) or ya.max() > float(self.y_range[1])):
            raise ValueError(
                f"y must lie in y_range={tuple(self.y_range)!r} when clip=True, got values in "
                f"[{ya.min():g}, {ya.max():g}]; rescale y or set y_range"
            )
        return ya

    def membership(self, X: ArrayLike, groups: ArrayLike | None = None) -> BoolArray:
        """The full membership matrix (always-on column included) that the estimator would use."""
        return self._checked(X, groups)[1]

    def _checked(self, X: ArrayLike, groups: ArrayLike | None) -> tuple[FloatArray, BoolArray]:
        """Validated features and the full membership matrix (no fitting)."""
        self._validate_params()
        Xa = _check_X(X, getattr(self, "n_features_in_", None))
        n_user = self.n_groups_ - int(self.always_on) if self._is_fitted() else None
        A = as_membership(
            Xa,
            groups,
            names=self._names_spec,
            predicates=self._predicates,
            n_groups=n_user,
            always_on=self.always_on,
        )
        return Xa, A

    def _prepare(self, X: ArrayLike, groups: ArrayLike | None) -> tuple[FloatArray, BoolArray]:
        Xa, A = self._checked(X, groups)
        if not self._is_fitted():
            self._setup(Xa, A)
        return Xa, A

    def _transform(self, out: FloatArray, link: str) -> FloatArray:
        """Copy outputs -> predictions in label space (clipped values, or probabilities)."""
        if self.loss == "logistic":
            pi = sigmoid(out) if link == "logit" else out
            return np.clip(pi, self.proba_eps, 1.0 - self.proba_eps)
        return np.clip(out, self._lo, self._hi) if self.clip else out

    # ------------------------------------------------------------------ the online loop
    def _stream(
        self, X: FloatArray, y: FloatArray, A: BoolArray, record: bool
    ) -> StreamRecord | None:
        n, G = A.shape
        bank, loss = self.experts_, self.loss
        empty = ~A.any(axis=1)
        # 1) the copies: each runs over its own rows (predict, then learn); rows with no active
        #    group are predict-only for every copy. Exactly the row-by-row interleaving.
        out = np.full((n, G), np.nan)
        for g in range(G):
            rows = np.flatnonzero(A[:, g] | empty)
            if rows.size:
                out[rows, g] = bank.progressive(g, X[rows], y[rows], A[rows, g])
        yhat = self._transform(out, bank.link)
        L = bounded_loss(
            loss, yhat, y[:, None], y_range=(self._lo, self._hi), proba_eps=self.proba_eps
        )
        # 2) AdaNormalHedge over the rows, in order (pure Python on the few awake experts per row).
        rows_nz, cols_nz = np.nonzero(A)
        starts = np.concatenate([[0], np.cumsum(np.bincount(rows_nz, minlength=n))]).tolist()
        cols = cols_nz.tolist()
        lvals = L[rows_nz, cols_nz].tolist()
        yvals = yhat[rows_nz, cols_nz].tolist()
        pflat = [0.0] * len(cols)
        R, C = self.regret_.tolist(), self.abs_regret_.tolist()
        gl = self.group_loss_.tolist()
        expected = [0.0] * n
        pred = [0.0] * n
        sample = self.prediction == "sample"
        u = np.asarray(self._rng.random(n)).tolist() if sample else None
        exp, logw_of, inf = math.exp, anh_log_weight_scalar, -math.inf
        for i in range(n):
            s0, s1 = starts[i], starts[i + 1]
            if s0 == s1:
                continue  # no group active: handled after the loop (no update, official code)
            lw = [logw_of(R[cols[j]], C[cols[j]]) for j in range(s0, s1)]
            top = max(lw)
            # all awake weights 0 (top == -inf): uniform over the awake experts, as the official code
            w = [1.0] * (s1 - s0) if top == inf else [exp(v - top) for v in lw]
            tot = sum(w)
            lhat = 0.0
            for k, j in enumerate(range(s0, s1)):
                pj = w[k] / tot
                pflat[j] = pj
                lhat += pj * lvals[j]
            for j in range(s0, s1):
                g = cols[j]
                r = lhat - lvals[j]
                R[g] += r
                C[g] += abs(r)
                gl[g] += lhat
            expected[i] = lhat
            if sample:
                assert u is not None
                acc, pick = 0.0, s1 - 1
                for j in range(s0, s1):
                    acc += pflat[j]
                    if u[i] < acc:
                        pick = j
                        break
                pred[i] = yvals[pick]
            else:
                acc = 0.0
                for j in range(s0, s1):
                    acc += pflat[j] * yvals[j]
                pred[i] = acc
        self.regret_ = np.asarray(R, dtype=np.float64)
        self.abs_regret_ = np.asarray(C, dtype=np.float64)
        self.group_loss_ = np.asarray(gl, dtype=np.float64)
        self.group_counts_ += A.sum(axis=0)
        weights = np.zeros((n, G))
        weights[rows_nz, cols_nz] = pflat
        prediction = np.asarray(pred, dtype=np.float64)
        if empty.any():
            weights[empty] = 1.0 / G
            if sample:
                assert u is not None
                pick = np.minimum((np.asarray(u)[empty] * G).astype(np.int64), G - 1)
                prediction[empty] = yhat[empty][np.arange(pick.size), pick]
            else:
                prediction[empty] = yhat[empty].mean(axis=1)
        self.weights_ = weights[-1].copy()
        self.n_rounds_ += n
        if not record:
            return None
        plain = bounded_loss(
            loss, prediction, y, y_range=(self._lo, self._hi), proba_eps=self.proba_eps
        )
        L = np.where(A, L, np.nan)
        return StreamRecord(
            prediction,
            plain,
            np.asarray(expected, dtype=np.float64),
            L,
            weights,
            A.copy(),
            self.group_names_,
        )

    # ------------------------------------------------------------------ public API
    def partial_fit(self: _E, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None) -> _E:
        """Process the rows of ``X`` in order (predict, observe the label, update); returns self."""
        Xa, A = self._prepare(X, groups)
        self._stream(Xa, self._check_y(y, Xa.shape[0]), A, record=False)
        return self

    def fit(self: _E, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None) -> _E:
        """Forget everything, then :meth:`partial_fit` on the rows in order."""
        self._reset()
        return self.partial_fit(X, y, groups)

    def partial_fit_predict(
        self, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None
    ) -> StreamRecord:
        """:meth:`partial_fit`, recording each row's prediction made *before* its label (progressive
        validation), the losses and the weights; see :class:`StreamRecord`."""
        Xa, A = self._prepare(X, groups)
        rec = self._stream(Xa, self._check_y(y, Xa.shape[0]), A, record=True)
        assert rec is not None
        return rec

    def _reset(self) -> None:
        for attr in (
            "experts_", "n_features_in_", "group_names_", "n_groups_", "regret_", "abs_regret_",
            "weights_", "group_counts_", "group_loss_", "n_rounds_",
        ):  # fmt: skip
            self.__dict__.pop(attr, None)

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted yet; call partial_fit or learn_one first"
            )

    def mixture_weights(self, X: ArrayLike, groups: ArrayLike | None = None) -> FloatArray:
        """:math:`p` per row ``(n, G)`` for the current state (no learning)."""
        self._check_fitted()
        _, A = self._prepare(X, groups)
        return self._weights_matrix(A)

    def _weights_matrix(self, A: BoolArray) -> FloatArray:
        lw = anh_log_weights(self.regret_, self.abs_regret_)
        W = np.where(A, lw[None, :], -np.inf)
        top = W.max(axis=1, keepdims=True)
        any_active = A.any(axis=1, keepdims=True)
        finite_top = np.isfinite(top)
        E = np.where(A & finite_top, np.exp(W - np.where(finite_top, top, 0.0)), 0.0)
        E = np.where(any_active & ~finite_top, A.astype(np.float64), E)  # all awake weights are 0
        E = np.where(any_active, E, 1.0)  # no group active: uniform over all experts
        return np.asarray(E / E.sum(axis=1, keepdims=True))

    def _predict_values(self, X: ArrayLike, groups: ArrayLike | None) -> FloatArray:
        self._check_fitted()
        Xa, A = self._prepare(X, groups)
        yhat = self._transform(self.experts_.predict_all(Xa), self.experts_.link)
        P = self._weights_matrix(A)
        if self.prediction == "mean":
            return np.asarray(np.sum(P * yhat, axis=1))
        u = np.asarray(self._rng.random(Xa.shape[0]))
        pick = np.minimum((np.cumsum(P, axis=1) <= u[:, None]).sum(axis=1), P.shape[1] - 1)
        return np.asarray(yhat[np.arange(Xa.shape[0]), pick])

    def predict(self, X: ArrayLike, groups: ArrayLike | None = None) -> FloatArray:
        """Predictions for the rows of ``X`` from the current state (no learning)."""
        return self._predict_values(X, groups)

    def _row_groups(self, groups: ArrayLike | Collection[str] | None) -> ArrayLike | None:
        if groups is None:
            return None
        if isinstance(groups, (set, frozenset, list, tuple)) and all(
            isinstance(g, str) for g in groups
        ):
            self._validate_params()
            names = self._names_spec
            if names is None and self._is_fitted():
                names = self.group_names_[: self.n_groups_ - int(self.always_on)]
            if names is None:
                raise ValueError(
                    "group names are unknown: build the estimator with groups=[names] to pass names"
                )
            return names_to_row(groups, names)[None, :]  # type: ignore[arg-type]
        if isinstance(groups, str):
            raise TypeError(
                f"groups must be a collection of names or a membership vector, got the string {groups!r}"
            )
        return np.asarray(groups).reshape(1, -1)

    def learn_one(
        self, x: ArrayLike, y: float, groups: ArrayLike | Collection[str] | None = None
    ) -> None:
        """river-style: learn from one row ``x`` (1-D) with label ``y``; ``groups`` is a membership
        vector or a collection of group names."""
        xv = np.asarray(x, dtype=np.float64)
        if xv.ndim != 1:
            raise ValueError(f"x must be a 1-D feature row, got shape {xv.shape}")
        self.partial_fit(xv[None, :], np.asarray([y], dtype=np.float64), self._row_groups(groups))

    def predict_one(self, x: ArrayLike, groups: ArrayLike | Collection[str] | None = None) -> float:
        """river-style prediction for one row (before any learning it predicts from fresh copies)."""
        xv = np.asarray(x, dtype=np.float64)
        if xv.ndim != 1:
            raise ValueError(f"x must be a 1-D feature row, got shape {xv.shape}")
        if not self._is_fitted():
            self._prepare(xv[None, :], self._row_groups(groups))
        return float(self._predict_values(xv[None, :], self._row_groups(groups))[0])


class GroupwiseClassifier(GroupwiseRegressor):
    """Binary classification with groupwise regret: the logistic (log) loss on probabilities.

    Same reduction as :class:`GroupwiseRegressor` with ``loss="logistic"``; the default oracle is
    :class:`~groupwise_regret.OnlineGradientDescent` on the logistic loss (``lr=0.5``). A value
    learner (e.g. :class:`~groupwise_regret.OnlineRidge`) is read as a linear probability model.
    Labels must be 0/1. :meth:`predict_proba` returns ``(n, 2)`` probabilities; :meth:`predict`
    returns labels.
    """

    def __init__(
        self,
        learner: Any = None,
        groups: GroupsSpec = None,
        *,
        always_on: bool = True,
        proba_eps: float = 1e-3,
        prediction: Literal["mean", "sample"] = "mean",
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(
            learner, groups, always_on=always_on, loss="logistic", proba_eps=proba_eps,
            prediction=prediction, random_state=random_state,
        )  # fmt: skip

    def _default_learner(self) -> Any:
        return OnlineGradientDescent(lr=0.5, loss="logistic")

    def predict_proba(self, X: ArrayLike, groups: ArrayLike | None = None) -> FloatArray:
        """``(n, 2)``: :math:`P(y=0)` and :math:`P(y=1)` per row."""
        p1 = self._predict_values(X, groups)
        return np.stack([1.0 - p1, p1], axis=1)

    def predict(self, X: ArrayLike, groups: ArrayLike | None = None) -> FloatArray:
        """0/1 labels: 1 where :math:`P(y=1) \\ge 1/2`."""
        return (self._predict_values(X, groups) >= 0.5).astype(np.float64)

r"""External-regret learners (the "oracles") behind one small protocol, and their group banks.

A learner is anything with

* ``predict_one(x) -> float``: its output for one feature row (before seeing the label), and
* ``learn_one(x, y) -> None``: update on one labelled row,

plus an optional ``link`` attribute: ``"identity"`` (the output is a value; default) or
``"logit"`` (the output is a log-odds score, for the logistic loss). :class:`GroupwiseRegressor`
copies the prototype once per group (``clone()`` if the learner has one, else ``copy.deepcopy``).

Learners may also provide ``make_bank(n_groups, n_features)`` returning a *bank*: the state of
``n_groups`` independent copies in stacked arrays, so that all awake copies predict and learn
over its whole subsequence of a batch without per-row dispatch. The banks compute exactly what the per-copy loop computes;
any other learner is wrapped in :class:`ListBank`.

Provided learners: :class:`OnlineRidge` (Sherman–Morrison, :math:`O(d^2)` per step, the paper's
oracle), :class:`OnlineGradientDescent` (:math:`O(d)`), and :class:`PartialFitLearner` (any
scikit-learn estimator with ``partial_fit``).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from groupwise_regret.losses import LossName, check_loss, loss_derivative

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

__all__ = [
    "Bank",
    "ListBank",
    "OnlineGradientDescent",
    "OnlineLearner",
    "OnlineRidge",
    "PartialFitLearner",
    "clone_learner",
    "make_bank",
]


@runtime_checkable
class OnlineLearner(Protocol):
    """The oracle protocol: predict one row, then learn from it."""

    def predict_one(self, x: FloatArray) -> float: ...

    def learn_one(self, x: FloatArray, y: float) -> None: ...


class Bank(Protocol):
    """State of ``n_groups`` independent copies of one learner.

    ``progressive(g, X, y, learn)`` runs copy ``g`` over its rows in order: output for row ``i``
    from the state before it, then learn the row when ``learn[i]`` (predict-only rows do not
    change the state). Because each copy sees only its own group's rows, the copies can run one
    after another over a whole batch, exactly as if interleaved row by row.
    """

    link: str

    def progressive(self, g: int, X: FloatArray, y: FloatArray, learn: BoolArray) -> FloatArray: ...

    def predict_all(self, X: FloatArray) -> FloatArray: ...


def clone_learner(learner: Any) -> Any:
    """An unfitted copy: ``learner.clone()`` when available, else ``copy.deepcopy``."""
    fn = getattr(learner, "clone", None)
    return fn() if callable(fn) else copy.deepcopy(learner)


def make_bank(learner: Any, n_groups: int, n_features: int) -> Bank:
    """The learner's vectorised bank if it has one, else a :class:`ListBank` of clones."""
    if not isinstance(learner, OnlineLearner):
        raise TypeError(
            f"learner must have predict_one(x) and learn_one(x, y) methods, got {type(learner).__name__}"
        )
    fn = getattr(learner, "make_bank", None)
    if callable(fn):
        bank: Bank = fn(n_groups, n_features)
        return bank
    return ListBank([clone_learner(learner) for _ in range(n_groups)])


def _as_row(x: ArrayLike, n_features: int | None) -> FloatArray:
    xv = np.asarray(x, dtype=np.float64)
    if xv.ndim != 1:
        raise ValueError(f"x must be a 1-D feature row, got shape {xv.shape}")
    if n_features is not None and xv.shape[0] != n_features:
        raise ValueError(
            f"x has {xv.shape[0]} features, but the learner was built for {n_features}"
        )
    if not np.all(np.isfinite(xv)):
        raise ValueError(f"x must be finite, got {xv!r}")
    return xv


def _check_y(y: float) -> float:
    yv = float(y)
    if not math.isfinite(yv):
        raise ValueError(f"y must be finite, got {y!r}")
    return yv


class OnlineRidge:
    r"""Online ridge regression (regularised follow-the-leader) with Sherman–Morrison updates.

    Before round ``t`` the learner predicts :math:`\hat y_t = \theta_t^\top x_t` with

    .. math::

        \theta_t = \Big(\alpha I + \sum_{s<t} x_s x_s^\top\Big)^{-1} \sum_{s<t} y_s x_s ,

    i.e. exactly batch ridge on the rows seen so far. The inverse :math:`P` starts at
    :math:`I/\alpha` and is updated in :math:`O(d^2)` per row
    (:func:`groupwise_regret.functional.ridge_sherman_morrison`). No intercept: append a constant
    column to ``x`` for one. ``alpha=1.0`` is the official code's ``l2_pen``.

    Args:
        alpha: ridge penalty :math:`\alpha > 0`.
        n_features: feature dimension; inferred from the first row when ``None``.
    """

    link = "identity"

    def __init__(self, alpha: float = 1.0, n_features: int | None = None) -> None:
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not alpha > 0
            or not math.isfinite(alpha)
        ):
            raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
        if n_features is not None and (
            isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1
        ):
            raise ValueError(f"n_features must be a positive int or None, got {n_features!r}")
        self.alpha = float(alpha)
        self.n_features = n_features
        self.n_seen_ = 0
        self._P: FloatArray | None = None
        self._b: FloatArray | None = None
        self._theta: FloatArray | None = None
        if n_features is not None:
            self._init(n_features)

    def _init(self, d: int) -> None:
        self.n_features = d
        self._P = np.eye(d) / self.alpha
        self._b = np.zeros(d)
        self._theta = np.zeros(d)

    def clone(self) -> OnlineRidge:
        return OnlineRidge(alpha=self.alpha, n_features=self.n_features)

    @property
    def coef_(self) -> FloatArray:
        """Current :math:`\\theta` (zeros before any update)."""
        if self._theta is None:
            raise AttributeError("OnlineRidge has no coef_ before it sees a feature row")
        return np.array(self._theta, dtype=np.float64)

    @property
    def inverse_(self) -> FloatArray:
        """Current :math:`P = (\\alpha I + X^\\top X)^{-1}`."""
        if self._P is None:
            raise AttributeError("OnlineRidge has no inverse_ before it sees a feature row")
        return np.array(self._P, dtype=np.float64)

    def predict_one(self, x: ArrayLike) -> float:
        xv = _as_row(x, self.n_features)
        if self._theta is None:
            self._init(xv.shape[0])
        assert self._theta is not None
        return float(self._theta @ xv)

    def learn_one(self, x: ArrayLike, y: float) -> None:
        xv = _as_row(x, self.n_features)
        yv = _check_y(y)
        if self._P is None:
            self._init(xv.shape[0])
        assert self._P is not None and self._b is not None
        u = self._P @ xv
        self._P -= np.outer(u, u) / (1.0 + xv @ u)
        self._b += yv * xv
        self._theta = self._P @ self._b
        self.n_seen_ += 1

    def partial_fit(self, X: ArrayLike, y: ArrayLike) -> OnlineRidge:
        """``learn_one`` over the rows of ``X`` in order."""
        Xa = np.asarray(X, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if Xa.ndim != 2 or ya.shape != (Xa.shape[0],):
            raise ValueError(
                f"X must be 2-D and y 1-D of matching length, got {Xa.shape} and {ya.shape}"
            )
        for i in range(Xa.shape[0]):
            self.learn_one(Xa[i], float(ya[i]))
        return self

    def progressive_predict(self, X: ArrayLike, y: ArrayLike) -> FloatArray:
        """Predict each row *before* learning it (progressive validation); returns the predictions."""
        Xa = np.asarray(X, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if Xa.ndim != 2 or ya.shape != (Xa.shape[0],):
            raise ValueError(
                f"X must be 2-D and y 1-D of matching length, got {Xa.shape} and {ya.shape}"
            )
        if not (np.all(np.isfinite(Xa)) and np.all(np.isfinite(ya))):
            raise ValueError("X and y must be finite (found NaN or inf)")
        if self._P is None:
            self._init(Xa.shape[1])
        elif Xa.shape[1] != self.n_features:
            raise ValueError(
                f"X has {Xa.shape[1]} features, but the learner was built for {self.n_features}"
            )
        P, b = self._P, self._b
        assert P is not None and b is not None
        theta = self._theta
        assert theta is not None
        out = np.empty(Xa.shape[0])
        for i in range(Xa.shape[0]):
            x = Xa[i]
            out[i] = theta @ x
            u = P @ x
            P -= np.outer(u, u) / (1.0 + x @ u)
            b += ya[i] * x
            theta = P @ b
        self._theta = theta
        self.n_seen_ += Xa.shape[0]
        return out

    def make_bank(self, n_groups: int, n_features: int) -> RidgeBank:
        if self.n_features is not None and self.n_features != n_features:
            raise ValueError(
                f"learner was built for {self.n_features} features, the data has {n_features}"
            )
        return RidgeBank(n_groups, n_features, self.alpha)


class RidgeBank:
    """``n_groups`` independent :class:`OnlineRidge` states, stacked: ``P`` (G, d, d), ``b``, ``theta``."""

    link = "identity"

    def __init__(self, n_groups: int, n_features: int, alpha: float) -> None:
        self.alpha = alpha
        self.P = np.broadcast_to(
            np.eye(n_features) / alpha, (n_groups, n_features, n_features)
        ).copy()
        self.b = np.zeros((n_groups, n_features))
        self.theta = np.zeros((n_groups, n_features))
        self.n_seen = np.zeros(n_groups, dtype=np.int64)

    def predict_all(self, X: FloatArray) -> FloatArray:
        return X @ self.theta.T  # type: ignore[no-any-return]

    def progressive(self, g: int, X: FloatArray, y: FloatArray, learn: BoolArray) -> FloatArray:
        P, b, theta = self.P[g], self.b[g], self.theta[g].copy()
        out = np.empty(X.shape[0])
        outer, learn_l, y_l = np.outer, learn.tolist(), y.tolist()
        for i in range(X.shape[0]):
            x = X[i]
            out[i] = theta @ x
            if learn_l[i]:
                u = P @ x
                P -= outer(u, u) / (1.0 + x @ u)
                b += y_l[i] * x
                theta = P @ b
        self.theta[g] = theta
        self.n_seen[g] += int(np.count_nonzero(learn))
        return out


class OnlineGradientDescent:
    r"""Online (projected) gradient descent on a linear model, :math:`O(d)` per step.

    .. math::

        \theta_{t+1} = \Pi_{\|\theta\| \le r}\big(\theta_t - \eta_t\, \ell'(\theta_t^\top x_t, y_t)\, x_t\big),
        \qquad \eta_t = \frac{\text{lr}}{\sqrt{t}} \ (\text{``inv_sqrt''}) \text{ or } \text{lr} \ (\text{``constant''}),

    where :math:`t` counts this copy's own updates and :math:`\ell'` is the derivative of the
    unscaled loss (:func:`groupwise_regret.losses.loss_derivative`). With ``loss="logistic"`` the
    output is a logit (``link = "logit"``). No intercept; ``radius=None`` means no projection.

    Args:
        lr: base step size (> 0).
        loss: ``"squared"``, ``"absolute"`` or ``"logistic"``.
        schedule: ``"inv_sqrt"`` (the standard :math:`O(\sqrt{T})`-regret choice) or ``"constant"``.
        radius: projection radius (> 0) or ``None``.
    """

    def __init__(
        self,
        lr: float = 0.1,
        loss: LossName = "squared",
        schedule: Literal["inv_sqrt", "constant"] = "inv_sqrt",
        radius: float | None = None,
    ) -> None:
        if (
            isinstance(lr, bool)
            or not isinstance(lr, (int, float))
            or not lr > 0
            or not math.isfinite(lr)
        ):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        check_loss(loss)
        if schedule not in ("inv_sqrt", "constant"):
            raise ValueError(f"schedule must be 'inv_sqrt' or 'constant', got {schedule!r}")
        if radius is not None and not (isinstance(radius, (int, float)) and radius > 0):
            raise ValueError(f"radius must be a positive number or None, got {radius!r}")
        self.lr = float(lr)
        self.loss: LossName = loss
        self.schedule = schedule
        self.radius = None if radius is None else float(radius)
        self.link = "logit" if loss == "logistic" else "identity"
        self.n_seen_ = 0
        self._theta: FloatArray | None = None

    def clone(self) -> OnlineGradientDescent:
        return OnlineGradientDescent(self.lr, self.loss, self.schedule, self.radius)

    @property
    def coef_(self) -> FloatArray:
        if self._theta is None:
            raise AttributeError("OnlineGradientDescent has no coef_ before it sees a feature row")
        return np.array(self._theta, dtype=np.float64)

    def _eta(self, t: FloatArray | int) -> Any:
        return (
            self.lr / np.sqrt(t) if self.schedule == "inv_sqrt" else self.lr + 0.0 * np.asarray(t)
        )

    def predict_one(self, x: ArrayLike) -> float:
        xv = _as_row(x, None if self._theta is None else self._theta.shape[0])
        if self._theta is None:
            self._theta = np.zeros(xv.shape[0])
        return float(self._theta @ xv)

    def learn_one(self, x: ArrayLike, y: float) -> None:
        xv = _as_row(x, None if self._theta is None else self._theta.shape[0])
        yv = _check_y(y)
        if self._theta is None:
            self._theta = np.zeros(xv.shape[0])
        self.n_seen_ += 1
        g = float(loss_derivative(self.loss, np.asarray(self._theta @ xv), yv))
        self._theta = self._theta - float(self._eta(self.n_seen_)) * g * xv
        if self.radius is not None:
            nrm = float(np.linalg.norm(self._theta))
            if nrm > self.radius:
                self._theta *= self.radius / nrm

    def make_bank(self, n_groups: int, n_features: int) -> GDBank:
        return GDBank(n_groups, n_features, self)


class GDBank:
    """``n_groups`` independent :class:`OnlineGradientDescent` states, stacked."""

    def __init__(self, n_groups: int, n_features: int, proto: OnlineGradientDescent) -> None:
        self.proto = proto
        self.link = proto.link
        self.theta = np.zeros((n_groups, n_features))
        self.n_seen = np.zeros(n_groups, dtype=np.int64)

    def predict_all(self, X: FloatArray) -> FloatArray:
        return X @ self.theta.T  # type: ignore[no-any-return]

    def progressive(self, g: int, X: FloatArray, y: FloatArray, learn: BoolArray) -> FloatArray:
        proto = self.proto
        theta, t = self.theta[g].copy(), int(self.n_seen[g])
        out = np.empty(X.shape[0])
        for i in range(X.shape[0]):
            x = X[i]
            o = float(theta @ x)
            out[i] = o
            if learn[i]:
                t += 1
                grad = float(loss_derivative(proto.loss, np.asarray(o), float(y[i])))
                theta = theta - float(proto._eta(t)) * grad * x
                if proto.radius is not None:
                    nrm = float(np.linalg.norm(theta))
                    if nrm > proto.radius:
                        theta *= proto.radius / nrm
        self.theta[g], self.n_seen[g] = theta, t
        return out


class ListBank:
    """Generic bank: one learner object per group, called one by one."""

    def __init__(self, learners: list[Any]) -> None:
        self.learners = learners
        links = {getattr(lr, "link", "identity") for lr in learners}
        if len(links) != 1 or next(iter(links)) not in ("identity", "logit"):
            raise ValueError(f"learner.link must be 'identity' or 'logit', got {sorted(links)!r}")
        self.link = next(iter(links))

    def predict_all(self, X: FloatArray) -> FloatArray:
        out = np.empty((X.shape[0], len(self.learners)))
        for g, lr in enumerate(self.learners):
            for i in range(X.shape[0]):
                out[i, g] = float(lr.predict_one(X[i]))
        return out

    def progressive(self, g: int, X: FloatArray, y: FloatArray, learn: BoolArray) -> FloatArray:
        lr = self.learners[g]
        out = np.empty(X.shape[0])
        for i in range(X.shape[0]):
            out[i] = float(lr.predict_one(X[i]))
            if learn[i]:
                lr.learn_one(X[i], float(y[i]))
        return out


class PartialFitLearner:
    """Adapter: any scikit-learn estimator with ``partial_fit`` as an online learner.

    ``predict_one`` returns ``init_prediction`` until the estimator has been fitted once, then the
    estimator's ``method`` (``"predict"`` for values, ``"decision_function"`` for logits, which
    sets ``link="logit"``) on the single row. ``learn_one`` calls ``partial_fit`` on one row
    (with ``classes=classes`` when given, as scikit-learn classifiers require on the first call).
    Clones go through :func:`sklearn.base.clone`.

    Args:
        estimator: an unfitted estimator with ``partial_fit``.
        method: ``"predict"`` or ``"decision_function"``.
        classes: passed to ``partial_fit`` (e.g. ``[0, 1]`` for classifiers), or ``None``.
        init_prediction: the output before the first update.
    """

    def __init__(
        self,
        estimator: Any,
        method: Literal["predict", "decision_function"] = "predict",
        classes: ArrayLike | None = None,
        init_prediction: float = 0.0,
    ) -> None:
        if not callable(getattr(estimator, "partial_fit", None)):
            raise TypeError(
                f"estimator must have a partial_fit method, got {type(estimator).__name__}"
            )
        if method not in ("predict", "decision_function"):
            raise ValueError(f"method must be 'predict' or 'decision_function', got {method!r}")
        if not callable(getattr(estimator, method, None)):
            raise TypeError(f"estimator {type(estimator).__name__} has no {method} method")
        self.estimator = estimator
        self.method = method
        self.classes = None if classes is None else np.asarray(classes)
        self.init_prediction = float(init_prediction)
        self.link = "logit" if method == "decision_function" else "identity"
        self._fitted = False

    def clone(self) -> PartialFitLearner:
        from sklearn.base import clone

        return PartialFitLearner(
            clone(self.estimator), self.method, self.classes, self.init_prediction
        )

    def predict_one(self, x: ArrayLike) -> float:
        xv = _as_row(x, None)
        if not self._fitted:
            return self.init_prediction
        return float(np.ravel(getattr(self.estimator, self.method)(xv[None, :]))[0])

    def learn_one(self, x: ArrayLike, y: float) -> None:
        xv = _as_row(x, None)
        yv = _check_y(y)
        if self.classes is not None:
            self.estimator.partial_fit(
                xv[None, :], np.asarray([yv]).astype(self.classes.dtype), classes=self.classes
            )
        else:
            self.estimator.partial_fit(xv[None, :], np.asarray([yv]))
        self._fitted = True

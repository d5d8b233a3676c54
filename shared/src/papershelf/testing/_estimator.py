"""``EstimatorSuite``: scikit-learn's estimator checks plus ``random_state`` determinism.

Set ``estimators`` (unfitted instances) and, when some checks cannot apply,
``expected_failed_checks`` mapping a check name to the reason (override ``expected_failures``
when that differs between estimators). Expected failures run as xfails (strict where the package sets ``xfail_strict``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest


class EstimatorSuite:
    estimators: ClassVar[list[Any]] = []
    #: check name -> reason; override :meth:`expected_failures` when it differs between estimators.
    expected_failed_checks: ClassVar[dict[str, str]] = {}
    #: bundled data set used for the determinism check.
    dataset: ClassVar[str] = "breast_cancer"

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "sklearn_check" not in metafunc.fixturenames:
            if "estimator" in metafunc.fixturenames:
                metafunc.parametrize(
                    "estimator", self.estimators, ids=[type(e).__name__ for e in self.estimators]
                )
            return
        checks = pytest.importorskip("sklearn.utils.estimator_checks")
        params = []
        for est in self.estimators:
            # mark="xfail" makes scikit-learn wrap the expected failures in pytest.param(..., marks=xfail);
            # the packages' `xfail_strict = true` then turns an unexpected pass into a failure.
            for item in checks.estimator_checks_generator(
                est, legacy=True, expected_failed_checks=self.expected_failures(est), mark="xfail"
            ):
                if hasattr(item, "marks"):  # a pytest ParameterSet (itself a namedtuple)
                    (e, check), marks = item.values, item.marks
                else:
                    (e, check), marks = item, ()
                name = getattr(check, "func", check).__name__
                params.append(pytest.param(e, check, marks=marks, id=f"{type(e).__name__}-{name}"))
        metafunc.parametrize("estimator,sklearn_check", params)

    def expected_failures(self, estimator: Any) -> dict[str, str]:
        """Checks expected to fail for ``estimator`` (default: ``expected_failed_checks``)."""
        return dict(self.expected_failed_checks)

    def test_sklearn_check(self, estimator: Any, sklearn_check: Any) -> None:
        sklearn_check(estimator)

    def test_random_state_determinism(self, estimator: Any) -> None:
        pytest.importorskip("sklearn")
        from sklearn.base import clone

        from papershelf.data import load_split

        if "random_state" not in estimator.get_params():
            pytest.skip("estimator has no random_state")
        split = load_split(self.dataset, seed=0)  # type: ignore[arg-type]
        preds = []
        for _ in range(2):
            est = clone(estimator).set_params(random_state=7)
            est.fit(split.X_train, split.y_train)
            out = (
                est.predict_proba(split.X_test)
                if hasattr(est, "predict_proba")
                else est.predict(split.X_test)
            )
            preds.append(np.asarray(out))
        np.testing.assert_array_equal(preds[0], preds[1])

"""Optional dependencies: import them lazily and say which extra to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

#: module name -> (pip distribution, papershelf extra that provides it)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "sklearn": ("scikit-learn", "sklearn"),
    "matplotlib": ("matplotlib", "plot"),
    "rich": ("rich", "rich"),
    "pytest": ("pytest", "testing"),
    "hypothesis": ("hypothesis", "testing"),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, *, extra: str | None = None, package: str = "papershelf") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming what to install.

    Args:
        module: the importable name, e.g. ``"torch"`` or ``"sklearn.datasets"``.
        extra: the extra of ``package`` that installs it; guessed from the top-level module name
            when omitted.
        package: the distribution whose extra provides it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the optional module is there but one of *its* imports failed: show that
        dist, default_extra = _EXTRAS.get(top, (top, top))
        extra = extra or default_extra
        raise MissingExtraError(
            f"{module!r} is needed here but is not installed; install it with "
            f"`pip install '{package}[{extra}]'` (or `pip install {dist}`)."
        ) from exc

"""Lazy re-exports for package ``__init__`` modules.

Method packages re-export their public API from ``__init__`` but must stay importable without
their heavy dependencies, because the registry imports ``<package>._method`` (and therefore the
package ``__init__``) just to read metadata. ``lazy_exports`` returns a module ``__getattr__`` and
``__dir__`` pair that imports a submodule only when one of its names is first used.

Example::

    __getattr__, __dir__ = lazy_exports(__name__, {"Lion": ".optimizer", "lion_step": ".functional"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], *, eager: Mapping[str, Any] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``__getattr__``/``__dir__`` for ``package`` that resolve ``names`` on first use.

    Args:
        package: the ``__name__`` of the package doing the exporting.
        names: public name -> module that defines it (absolute, or relative with a leading dot).
        eager: names already bound in the package namespace (shown by ``dir()``).
    """
    table = dict(names)
    bound = sorted(set(table) | set(eager or {}))

    def __getattr__(name: str) -> Any:
        try:
            where = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(where, package)
        return getattr(module, name)

    def __dir__() -> list[str]:
        return bound

    return __getattr__, __dir__

"""papershelf core: data, devices, the method registry, the ``papershelf`` command and testing.

The core is deliberately tiny and depends only on numpy; torch, scikit-learn, matplotlib and rich
are optional extras imported lazily by the modules that need them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from papershelf._lazy import lazy_exports
from papershelf._optional import MissingExtraError, require
from papershelf.registry import DemoResult, MethodInfo, available_methods, get_method

try:
    __version__ = version("papershelf")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0+unknown"

__all__ = [
    "DemoResult",
    "MethodInfo",
    "MissingExtraError",
    "__version__",
    "available_methods",
    "get_method",
    "lazy_exports",
    "require",
]

"""The method registry: what each installed papershelf package implements.

Every method package publishes one :class:`MethodInfo` through the entry-point group
``papershelf.methods``::

    [project.entry-points."papershelf.methods"]
    lion-opt = "lion_opt._method:METHOD"

Discovery reads the entry points and imports only each package's ``_method`` module, which must
not import torch or any other heavy dependency (package ``__init__`` modules use
:func:`papershelf.lazy_exports`). The demo named by :attr:`MethodInfo.demo` is imported only when
it runs.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

GROUP = "papershelf.methods"
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class MethodInfo:
    """Static description of one paper's implementation.

    Attributes:
        name: distribution name, e.g. ``"lion-opt"``; also the entry-point name.
        title: the paper's title.
        authors: the paper's authors, in order.
        venue: venue and year as cited, e.g. ``"ICLR 2024"``.
        year: publication year.
        arxiv: arXiv identifier, e.g. ``"2310.05898"``.
        code_url: official code URL, or ``""`` when none was released.
        claim: the paper's central claim in one line, as the demo tests it.
        demo: ``"module:function"`` of the demo, called as ``fn(quick=..., seed=..., out_dir=...)``
            and returning a :class:`DemoResult`.
        kind: what the package provides (optimizer, metric, estimator, module, algorithm, kernel).
    """

    name: str
    title: str
    authors: tuple[str, ...]
    venue: str
    year: int
    arxiv: str
    code_url: str
    claim: str
    demo: str
    kind: str = "algorithm"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"MethodInfo.name must be a lowercase dash-separated slug, got {self.name!r}"
            )
        if ":" not in self.demo:
            raise ValueError(f"MethodInfo.demo must be 'module:function', got {self.demo!r}")
        if not self.authors:
            raise ValueError(f"MethodInfo.authors must not be empty for {self.name!r}")

    @property
    def import_name(self) -> str:
        """The import name of the package (``lion-opt`` -> ``lion_opt``)."""
        return self.name.replace("-", "_")

    @property
    def paper_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else ""

    def load_demo(self) -> DemoFunction:
        """Import and return the demo function (this may import torch and friends)."""
        module, _, attr = self.demo.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        if not callable(fn):
            raise TypeError(f"demo {self.demo!r} of {self.name!r} is not callable")
        return fn  # type: ignore[no-any-return]


@dataclass
class DemoResult:
    """What a demo measured: the claim, one headline metric for method and baseline, and a verdict.

    Attributes:
        claim: the claim tested, one line.
        metric: name of the headline metric (say which direction is better).
        method_value: the method's value of the metric, measured by running it.
        baseline_value: the baseline's value, measured in the same run.
        baseline: name of the baseline.
        holds: whether the claim held in this run (decided by the demo from the numbers).
        table: further rows (list of dicts with the same keys) for the report.
        figures: paths of PNG plots written by the demo.
        details: free-form numbers worth recording (all JSON-serialisable).
    """

    claim: str
    metric: str
    method_value: float
    baseline_value: float
    baseline: str
    holds: bool
    table: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class DemoFunction(Protocol):
    def __call__(
        self, *, quick: bool = ..., seed: int = ..., out_dir: Path | None = ...
    ) -> DemoResult: ...


@functools.cache
def _entry_points() -> tuple[Any, ...]:
    seen: dict[str, Any] = {}
    for ep in entry_points(group=GROUP):
        seen.setdefault(ep.name, ep)  # first distribution wins, as importlib orders them
    return tuple(seen[k] for k in sorted(seen))


def available_methods(*, refresh: bool = False) -> Mapping[str, MethodInfo]:
    """All installed methods by name (imports only each package's light ``_method`` module)."""
    if refresh:
        _entry_points.cache_clear()
    found: dict[str, MethodInfo] = {}
    for ep in _entry_points():
        info = ep.load()
        if not isinstance(info, MethodInfo):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a papershelf MethodInfo")
        if info.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} publishes MethodInfo named {info.name!r}")
        found[info.name] = info
    return found


def get_method(name: str) -> MethodInfo:
    """The installed method called ``name``; the error lists what is installed."""
    methods = available_methods()
    try:
        return methods[name]
    except KeyError:
        known = ", ".join(methods) or "none"
        raise KeyError(
            f"no installed papershelf method named {name!r} (installed: {known})"
        ) from None


RunHook = Callable[[MethodInfo], None]

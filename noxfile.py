#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Every task of the papershelf monorepo. ``nox -l`` lists the sessions.

Sessions are generated for the core (``shared/``, named ``papershelf``) and for each folder under
``packages/``: ``tests-<name>``, ``typecheck-<name>``, ``demo-<name>`` and ``bench-<name>`` (not in
the default run). ``tests-<name>`` builds the package and the core as wheels and installs them,
with the package's ``test`` dependency group only, into a venv of its own, so an import the
package never declared fails there.

Installs go through ``uv pip install``, which honours ``UV_FIND_LINKS`` and ``UV_CONSTRAINT``:
point those at a local CPU build of torch to avoid downloading the CUDA build (see README).
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
BUILD = ROOT / "build"
CORE = "papershelf"
#: packages with a compiled part: never installed editable (that would recompile), always as wheels.
NATIVE = {"abq-kernels"}
README_SECTIONS = (
    "Install",
    "Quickstart",
    "Method",
    "Hyperparameters",
    "Differences",
    "Reproduction",
    "Benchmarks",
    "Citation",
)


def _load(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


#: folder name -> (distribution name, folder)
MEMBERS: dict[str, tuple[str, Path]] = {CORE: (CORE, ROOT / "shared")}
for _pp in sorted(ROOT.glob("packages/*/pyproject.toml")):
    MEMBERS[_pp.parent.name] = (_load(_pp)["project"]["name"], _pp.parent)
FOLDER_OF = dict(MEMBERS.values())
DISTS = set(FOLDER_OF)
_BUILT: dict[str, Path] = {}  # dist -> wheel built in this nox run


def _name_of(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@(]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


@functools.cache
def _wheel_dir() -> Path:
    """A wheel folder private to this nox process (parallel nox runs must not share one)."""
    BUILD.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="wheels-", dir=BUILD))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _wheel(session: nox.Session, dist: str) -> Path:
    """Build ``dist`` as a wheel (once per nox run) and return its path."""
    if dist not in _BUILT:
        out = _wheel_dir() / dist
        session.run(
            "uv",
            "build",
            "--wheel",
            "--package",
            dist,
            "--out-dir",
            str(out),
            "--quiet",
            external=True,
        )
        _BUILT[dist] = next(out.glob("*.whl"))
    return _BUILT[dist]


def _group(folder: Path, *groups: str) -> list[str]:
    data = _load(folder / "pyproject.toml")
    return [r for g in groups for r in nox.project.dependency_groups(data, g)]


def _install(
    session: nox.Session,
    folders: list[Path],
    groups: tuple[str, ...],
    *,
    editable: bool = False,
    extra: tuple[str, ...] = (),
    own_extras: bool = False,
) -> None:
    """Install workspace members (wheels, or editable) plus their dependency groups.

    Requirements that name a workspace member are pointed at the local build, keeping their
    extras, so nothing of ours is ever taken from a package index.
    """
    names = {_load(f / "pyproject.toml")["project"]["name"]: f for f in folders}
    reqs: list[str] = list(extra)
    for f in folders:
        reqs += _group(f, *groups)
    extras: dict[str, set[str]] = {n: set() for n in names}
    if own_extras:  # every optional-dependency extra the members themselves declare
        for n, f in names.items():
            extras[n] |= set(
                _load(f / "pyproject.toml")["project"].get("optional-dependencies", {})
            )
    other: list[str] = []
    for r in reqs:
        n = _name_of(r)
        if n in DISTS:
            names.setdefault(n, FOLDER_OF[n])
            extras.setdefault(n, set())
            m = re.search(r"\[([^\]]*)\]", r)
            if m:
                extras[n] |= {e.strip() for e in m.group(1).split(",")}
        else:
            other.append(r)
    names.setdefault(CORE, FOLDER_OF[CORE])
    extras.setdefault(CORE, set())
    args: list[str] = []
    for n, f in names.items():
        ex = f"[{','.join(sorted(extras[n]))}]" if extras[n] else ""
        if editable:
            args += ["-e", f"{f}{ex}"]
        else:
            args.append(f"{n}{ex} @ {_wheel(session, n).resolve().as_uri()}")
    session.install(*args, *other, *(f"--reinstall-package={n}" for n in names))


def _register(folder_name: str, dist: str, folder: Path) -> None:
    rel = folder.relative_to(ROOT).as_posix()

    @nox.session(name=f"tests-{folder_name}", tags=["tests", folder_name])
    def tests(session: nox.Session) -> None:
        """Unit, parity and conformance tests: the built wheel alone in an isolated venv."""
        _install(session, [folder], ("test",))
        session.chdir(folder)
        session.run("python", "-m", "pytest", "-q", *session.posargs)

    tests.__doc__ = f"{dist}: tests against the built wheel in an isolated venv."

    @nox.session(name=f"typecheck-{folder_name}", tags=["typecheck", folder_name])
    def typecheck(session: nox.Session) -> None:
        _install(
            session, [folder], ("test",), editable=dist not in NATIVE, extra=("mypy>=2.4,<2.5",)
        )
        session.run(
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            f"{rel}/src",
            f"{rel}/tests",
            *session.posargs,
        )

    typecheck.__doc__ = f"{dist}: mypy --strict over src and tests."

    if folder_name != CORE:

        @nox.session(name=f"demo-{folder_name}", tags=["demo", folder_name])
        def demo(session: nox.Session) -> None:
            # The demo gets every optional feature of the package and of the core (plots, progress).
            _install(session, [folder], (), extra=("papershelf[all]",), own_extras=True)
            out = BUILD / "repro" / folder_name
            session.run("papershelf", "repro", dist, "--out", str(out), *session.posargs)

        demo.__doc__ = (
            f"{dist}: `papershelf repro {dist}` (the paper's claim against its baseline)."
        )

    if (folder / "benchmarks").is_dir():

        @nox.session(name=f"bench-{folder_name}", tags=["bench", folder_name], default=False)
        def bench(session: nox.Session) -> None:
            _install(session, [folder], ("test", "bench"))
            session.chdir(folder)
            out = BUILD / "bench" / f"{folder_name}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            session.run(
                "python",
                "-m",
                "pytest",
                "benchmarks",
                "-o",
                "python_files=bench_*.py test_*.py",
                "-p",
                "no:randomly",
                "--benchmark-only",
                f"--benchmark-json={out}",
                "-s",
                *session.posargs,
            )

        bench.__doc__ = f"{dist}: benchmarks (ratios against the baseline in the same run)."


for _folder_name, (_dist, _folder) in MEMBERS.items():
    _register(_folder_name, _dist, _folder)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check over the whole tree."""
    session.install(*_group(ROOT, "lint"))
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session(tags=["ci"])
def integration(session: nox.Session) -> None:
    """integration-tests/: every package installed together, used as downstream projects do."""
    folders = [f for _, f in MEMBERS.values()]
    _install(session, folders, (), extra=tuple(_group(ROOT, "integration")))
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "papershelf.testing.plugin",
        "--import-mode=importlib",
        "-W",
        "error",
        "integration-tests",
        *session.posargs,
    )


@nox.session(tags=["ci"])
def docs(session: nox.Session) -> None:
    """Build the mkdocs-material site (package pages from READMEs, API by mkdocstrings) with --strict."""
    folders = [f for _, f in MEMBERS.values()]
    _install(session, folders, (), extra=tuple(_group(ROOT, "docs")))
    session.env.update(NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    session.run(
        "mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "--site-dir", str(BUILD / "site")
    )


@nox.session(name="repo-check", venv_backend="none", tags=["ci"])
def repo_check(session: nox.Session) -> None:
    """Every package follows the template: pyproject fields, entry point, README sections, tests, py.typed."""
    problems = check_repo()
    for p in problems:
        session.warn(p)
    if problems:
        session.error(f"{len(problems)} template problem(s)")
    session.log(f"{len(MEMBERS) - 1} packages follow the template")


def check_repo() -> list[str]:
    problems: list[str] = []
    root = _load(ROOT / "pyproject.toml")
    sources = root.get("tool", {}).get("uv", {}).get("sources", {})
    dev = {_name_of(r) for r in root.get("dependency-groups", {}).get("dev", [])}
    for folder_name, (dist, folder) in MEMBERS.items():
        if folder_name == CORE:
            continue
        where = f"packages/{folder_name}"
        data = _load(folder / "pyproject.toml")
        project = data.get("project", {})
        module = dist.replace("-", "_")
        if dist != folder_name:
            problems.append(f"{where}: distribution name {dist!r} differs from the folder name")
        for key in ("description", "readme", "requires-python", "license", "dependencies", "urls"):
            if key not in project:
                problems.append(f"{where}: [project] lacks {key!r}")
        urls = project.get("urls", {})
        if "Paper" not in urls:
            problems.append(f"{where}: [project.urls] needs 'Paper'")
        eps = project.get("entry-points", {}).get("papershelf.methods", {})
        if eps != {dist: f"{module}._method:METHOD"}:
            problems.append(
                f"{where}: entry point must be papershelf.methods: {dist} = '{module}._method:METHOD'"
            )
        if not any(_name_of(d) == CORE for d in project.get("dependencies", [])):
            problems.append(f"{where}: must depend on papershelf")
        groups = data.get("dependency-groups", {})
        if "test" not in groups:
            problems.append(f"{where}: needs a `test` dependency group")
        if "tool" in data and (
            "ruff" in data["tool"] or ("uv" in data["tool"] and "sources" in data["tool"]["uv"])
        ):
            problems.append(
                f"{where}: ruff config and uv sources belong in the root pyproject only"
            )
        src = folder / "src" / module
        for needed in ("__init__.py", "py.typed", "_method.py", "demo.py"):
            if not (src / needed).is_file():
                problems.append(f"{where}: missing src/{module}/{needed}")
        if not list((folder / "tests").glob("test_*.py")):
            problems.append(f"{where}: no tests/test_*.py")
        readme = folder / "README.md"
        if not readme.is_file():
            problems.append(f"{where}: missing README.md")
        else:
            text = readme.read_text(encoding="utf-8")
            heads = {
                h.strip().lower() for h in re.findall(r"^##\s+(.+)$", text, flags=re.MULTILINE)
            }
            for sec in README_SECTIONS:
                if not any(h.startswith(sec.lower()) for h in heads):
                    problems.append(f"{where}: README lacks a '## {sec}' section")
        if sources.get(dist) != {"workspace": True}:
            problems.append(
                f"pyproject.toml: [tool.uv.sources] needs {dist} = {{ workspace = true }}"
            )
        if dist not in dev:
            problems.append(f"pyproject.toml: the dev group must include {dist}")
        if not list((ROOT / "integration-tests").glob(f"test_*{module}*.py")) and not any(
            module in p.read_text(encoding="utf-8")
            for p in (ROOT / "integration-tests").glob("test_*.py")
        ):
            problems.append(f"integration-tests: no test uses {module}")
    return problems


if __name__ == "__main__":
    nox.main()

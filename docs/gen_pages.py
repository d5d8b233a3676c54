"""Generate the site's package pages from package READMEs and the API pages (mkdocs-gen-files).

Run by mkdocs from the repository root (``mkdocs build -f docs/mkdocs.yml``). One page per package
comes from its README (the method card), and one API page per public module of each package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import mkdocs_gen_files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def public_modules(src: Path, package: str) -> list[str]:
    mods = [package]
    for path in sorted((src / package).rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        if any(part.startswith("_") for part in rel.parts) or rel.name == "demo":
            continue
        mods.append(".".join(rel.parts))
    return mods


def write_api(name: str, src: Path, package: str) -> str:
    page = f"api/{name}.md"
    with mkdocs_gen_files.open(page, "w") as fh:
        fh.write(f"# `{package}` API\n\n")
        for mod in public_modules(src, package):
            if mod == package:
                continue
            fh.write(f"::: {mod}\n\n")
    return page


rows = []
for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
    folder = pyproject.parent
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    name, package = project["name"], project["name"].replace("-", "_")
    readme = (folder / "README.md").read_text(encoding="utf-8")
    # Links relative to the package folder do not exist on the site: point them at the API page.
    readme = re.sub(r"\]\((?!https?://|#)([^)]+)\)", r"](../api/" + name + ".md)", readme)
    with mkdocs_gen_files.open(f"packages/{name}.md", "w") as fh:
        fh.write(readme)
    write_api(name, folder / "src", package)
    rows.append(f"| [{name}]({name}.md) | {project['description']} |")

write_api("papershelf", ROOT / "shared" / "src", "papershelf")
with mkdocs_gen_files.open("packages/index.md", "w") as fh:
    fh.write("# Packages\n\n| package | what it implements |\n|---|---|\n" + "\n".join(rows) + "\n")

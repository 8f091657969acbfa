"""What tracked imports is declared in pyproject.toml, and what it declares it imports."""

from __future__ import annotations

import ast
import functools
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# extras that install tools or integrations for the work of other modules, not imports of ours
NOT_IMPORTED_EXTRAS = {"all", "dev"}


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalised (`ray[tune]>=2.9` -> `ray`)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def imported_modules() -> dict[str, set[str]]:
    """Third-party top-level modules imported anywhere in tracked/ -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tracked").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "tracked" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _installed() -> dict[str, list[str]]:
    return dict(packages_distributions())


# modules of optional packages that may not be installed here, by the distribution providing them
NOT_INSTALLED = {"pynvml": "nvidia-ml-py"}


def distributions(module: str) -> set[str]:
    found = {_name(d) for d in _installed().get(module, [])}
    return found or {_name(NOT_INSTALLED.get(module, module))}


def test_every_import_is_declared() -> None:
    project = PYPROJECT["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in NOT_IMPORTED_EXTRAS:
            declared |= {_name(r) for r in requirements if not r.startswith("tracked[")}
    undeclared = {
        module: sorted(files)
        for module, files in imported_modules().items()
        if not distributions(module) & declared
    }
    assert undeclared == {}


def test_every_core_dependency_is_imported() -> None:
    imported = set().union(*(distributions(m) for m in imported_modules()))
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core - imported == set()


def test_optional_packages_are_extras_not_requirements() -> None:
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "mcp" not in core and "mcp" in {_name(r) for r in extras["mcp"]}
    assert "typer" not in core and "click" in core
    assert not any("<" in r for r in PYPROJECT["project"]["dependencies"] if _name(r) == "mlflow")
    torch_pins = [r for r in extras["dev"] if _name(r) == "torch"]
    assert torch_pins == ["torch==2.13.0"] and extras["torch"] == ["torch>=2.2"]

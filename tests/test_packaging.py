"""What the wheel ships and what each subpackage exports.

`src/` is the package `changegate` itself, so setuptools cannot discover subpackages on its
own: pyproject.toml lists each one, and a subpackage missing from that list is missing from
every installed copy while the tests (which import from the source tree) still pass.
"""

from __future__ import annotations

import importlib
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
SRC = ROOT / "src"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS: dict[str, Any] = PYPROJECT["tool"]["setuptools"]

# Alembic's revisions: loaded by path from `changegate.store.migrate`, not imported by users.
INTERNAL = ("changegate.store.migrations",)
# Packages whose namespace holds more than their exports: the CLI's `__init__` assembles the
# click group from command modules; `health` loads its HTTP sources lazily (`__getattr__`).
NOT_REEXPORTS = {"changegate.cli", "changegate.health"}
MUST_EXPORT = {
    "changegate.models",
    "changegate.client",
    "changegate.service",
    "changegate.authority",
}


def source_packages() -> set[str]:
    """Every directory under src/ that is a package, by its import name."""
    found = set()
    for init in SRC.rglob("__init__.py"):
        parts = init.parent.relative_to(SRC).parts
        if all((SRC.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(len(parts))):
            found.add(".".join(("changegate", *parts)))
    return found


def public_packages() -> list[str]:
    return sorted(
        name for name in source_packages() if name != "changegate" and not name.startswith(INTERNAL)
    )


def test_src_is_the_changegate_package() -> None:
    assert SETUPTOOLS["package-dir"] == {"changegate": "src"}


def test_pyproject_lists_every_package_and_nothing_else() -> None:
    listed = SETUPTOOLS["packages"]
    assert len(listed) == len(set(listed)), "a package is listed twice"
    found = source_packages()
    assert sorted(found - set(listed)) == [], "packages under src/ missing from pyproject.toml"
    assert sorted(set(listed) - found) == [], "pyproject.toml lists packages src/ does not have"


def test_the_named_public_packages_are_checked() -> None:
    assert set(public_packages()) >= MUST_EXPORT


@pytest.mark.parametrize("name", public_packages())
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} declares no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ names something twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not define"
    private = [n for n in exported if n.startswith("_")]
    assert private == [], f"{name}.__all__ exports private names"


@pytest.mark.parametrize("name", [n for n in public_packages() if n not in NOT_REEXPORTS])
def test_every_public_name_is_in_all(name: str) -> None:
    module = importlib.import_module(name)
    bound = {
        n
        for n, value in vars(module).items()
        if not n.startswith("_")
        and n != "annotations"  # `from __future__ import annotations`
        and not isinstance(value, types.ModuleType)  # submodules bound by importing them
    }
    assert sorted(bound - set(module.__all__)) == [], f"{name} binds names __all__ leaves out"

"""The contract every target kind keeps, and the harnesses that give each kind a live target.

A kind's harness is a module `tests/kinds/<anything>_contract.py` that calls `register`
with a factory: given the pytest request (for session fixtures such as `fleet_process`,
or `tmp_path`), it returns a `Harness` for a live target of at least two units. Nothing else
needs editing: `tests/test_kind_contract.py` runs the same checks over every kind the
registry loads, and a kind without a harness fails there, by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from pydantic import JsonValue

from changegate.models import Target
from changegate.settings import Settings


@dataclass
class Harness:
    """A live target of one kind and the inputs the contract needs for it."""

    settings: Settings
    """What the kind builds its provider from (`TargetKind.provider(settings)`)."""
    target: Target
    """A live target with at least two units, already in canonical form."""
    operation: str
    parameters: dict[str, JsonValue]
    """A valid change that differs from every unit's current state."""
    spellings: Sequence[tuple[Target, Target]] = ()
    """Other spellings and the canonical target each resolves to (an id list out of order)."""
    bad_selectors: Sequence[tuple[dict[str, str], str]] = ()
    """Selectors `resolve` must refuse, each with the field its refusal names."""
    bad_parameters: Sequence[tuple[dict[str, JsonValue], str]] = ()
    """Parameters validation must refuse, each with the field its refusal names."""
    cleanup: list[Callable[[], None]] = field(default_factory=list)


Factory = Callable[[pytest.FixtureRequest], Harness]

CONTRACT_TARGETS: dict[str, Factory] = {}
"""Harness factories by kind name."""


def register(kind: str) -> Callable[[Factory], Factory]:
    """Register the decorated factory as the harness of `kind`."""

    def decorate(factory: Factory) -> Factory:
        CONTRACT_TARGETS[kind] = factory
        return factory

    return decorate


def load_harnesses() -> dict[str, Factory]:
    """Every `tests/kinds/*_contract.py` imported, and the factories they registered."""
    import tests.kinds

    for module in pkgutil.iter_modules(tests.kinds.__path__):
        if module.name.endswith("_contract"):
            importlib.import_module(f"tests.kinds.{module.name}")
    return CONTRACT_TARGETS

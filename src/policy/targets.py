"""Target labels: which globs match a label, and what a label depends on or supports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

Topology = Mapping[str, Sequence[str]]


def matches_any(label: str, patterns: Iterable[str]) -> bool:
    """True when `label` matches one of the globs (`fleet:service=*`, `*`), case-sensitively."""
    return any(fnmatchcase(label, pattern) for pattern in patterns)


def dependencies_of(label: str, topology: Topology) -> list[str]:
    """Every target `label` depends on, directly or through others, nearest first."""
    return _reach(label, topology)


def dependents_of(label: str, topology: Topology) -> list[str]:
    """Every target that depends on `label`, directly or through others, nearest first."""
    reverse: dict[str, list[str]] = {}
    for source, needs in topology.items():
        for need in needs:
            reverse.setdefault(need, []).append(source)
    return _reach(label, reverse)


def _reach(start: str, edges: Topology) -> list[str]:
    seen = {start}
    order: list[str] = []
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(edges.get(node, ())):
                if nxt not in seen:
                    seen.add(nxt)
                    order.append(nxt)
                    following.append(nxt)
        frontier = following
    return order

"""Split a target's units into a canary phase and rollout waves."""

from __future__ import annotations

from collections.abc import Sequence

from changegate.models import RolloutSpec


def split_phases(unit_ids: Sequence[str], rollout: RolloutSpec) -> list[list[str]]:
    """Canary first, then the rest in at most `rollout.waves` waves of near-equal size.

    A target with no more units than the canary size is changed entirely in the canary.
    """
    canary = list(unit_ids[: rollout.canary_units])
    rest = list(unit_ids[rollout.canary_units :])
    phases = [canary] if canary else []
    if not rest:
        return phases
    waves = min(rollout.waves, len(rest))
    size, extra = divmod(len(rest), waves)
    start = 0
    for index in range(waves):
        end = start + size + (1 if index < extra else 0)
        phases.append(rest[start:end])
        start = end
    return phases


def phase_name(index: int) -> str:
    """`canary` for the first phase, `wave-N` for the others."""
    return "canary" if index == 0 else f"wave-{index}"

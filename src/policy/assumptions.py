"""Compare what the agent believed with what reconnaissance observed.

A *written key* is a change parameter that the target's units also report as state (the
fleet's `set_config` writes `pool_size`, and every instance reports `pool_size`). The agent's
belief about a written key is its picture of the change's *before*: when that belief is
stale, the change it reasoned about is not the change that would run.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from pydantic import JsonValue

from changegate.models import Finding, TargetObservation

RESUBMIT = (
    "observe the target again (MCP `observe_target`, or the `observation` of this change's "
    "status: `changegate show <change>`) and resubmit with assumptions that match the live "
    "values"
)
"""What a blocked agent must do, said by every finding that blocks on stale context."""


def written_keys(writes: Mapping[str, JsonValue], observation: TargetObservation) -> set[str]:
    """The change parameters that some observed unit reports as state."""
    return {key for key in writes if any(key in u.state for u in observation.units)}


def check_assumptions(
    assumptions: dict[str, JsonValue],
    observation: TargetObservation,
    *,
    writes: Mapping[str, JsonValue] | None = None,
) -> list[Finding]:
    """One finding for every assumption that does not hold, in the agent's order.

    A path may use `*` for one segment (`units.*.pool_size`): every unit must then match.
    A path that names nothing observable is a finding too: the agent believed in a value
    nobody can check. A stale belief about a key the change writes (`writes`, the change's
    parameters) is `stale-written-key` and blocks; any other stale belief is
    `stale-assumption`.
    """
    observed = observation.paths()
    written = written_keys(writes or {}, observation)
    findings: list[Finding] = []
    for path, expected in assumptions.items():
        actual = _lookup(observed, path)
        if actual is None:
            findings.append(
                Finding(
                    code="unverifiable-assumption",
                    severity="warn",
                    path=path,
                    expected=expected,
                    actual=None,
                    message=f"the agent assumed {path} = {expected!r}, but recon observes no "
                    f"such path (observable: unit_count, units.<id>.<key>, "
                    f"{', '.join(sorted(observation.facts)) or 'no facts'})",
                )
            )
            continue
        wrong = {p: v for p, v in actual.items() if v != expected}
        if not wrong:
            continue
        shown = next(iter(wrong.values())) if len(wrong) == 1 else wrong
        message = f"the agent assumed {path} = {expected!r}, but it is {_describe(wrong)}"
        key = _unit_key(path)
        if key in written:
            findings.append(
                Finding(
                    code="stale-written-key",
                    severity="block",
                    path=path,
                    expected=expected,
                    actual=shown,
                    message=f"{message}; {key} is a key this change writes, so its before is "
                    f"not what the agent reasoned about: {RESUBMIT}",
                )
            )
        else:
            findings.append(
                Finding(
                    code="stale-assumption",
                    severity="warn",
                    path=path,
                    expected=expected,
                    actual=shown,
                    message=message,
                )
            )
    return findings


def direction_findings(
    assumptions: dict[str, JsonValue],
    observation: TargetObservation,
    *,
    writes: Mapping[str, JsonValue],
) -> list[Finding]:
    """A blocking `direction-reversed` finding per written numeric key whose real direction
    on some unit is the opposite of the one the agent believed.

    The believed direction is the agent's assumption for the unit (`units.<id>.<key>`, else
    the first matching pattern such as `units.*.<key>`) against the requested value; the real
    one is the observed value against the requested value. A unit with no belief, a
    non-numeric value or no movement on either side is not reversed.
    """
    findings: list[Finding] = []
    for key in sorted(written_keys(writes, observation)):
        wanted = _number(writes[key])
        if wanted is None:
            continue
        reversed_units: dict[str, tuple[float, float]] = {}
        for unit in observation.units:
            believed = _number(_belief(assumptions, unit.unit_id, key))
            actual = _number(unit.state.get(key))
            if believed is None or actual is None:
                continue
            if _sign(wanted - believed) * _sign(wanted - actual) < 0:
                reversed_units[unit.unit_id] = (believed, actual)
        if reversed_units:
            findings.append(_reversed(key, writes[key], reversed_units))
    return findings


def _reversed(key: str, wanted: JsonValue, units: dict[str, tuple[float, float]]) -> Finding:
    first_believed, first_actual = next(iter(units.values()))
    after = _number(wanted) or 0.0
    believed_way, real_way = _way(first_believed, after), _way(first_actual, after)
    where = ", ".join(
        f"{unit_id} is at {actual!r} ({actual!r} → {wanted!r})"
        for unit_id, (_, actual) in units.items()
    )
    single = len(units) == 1
    return Finding(
        code="direction-reversed",
        severity="block",
        path=f"units.{next(iter(units)) if single else '*'}.{key}",
        expected=first_believed if single else {u: b for u, (b, _) in units.items()},
        actual=first_actual if single else {u: a for u, (_, a) in units.items()},
        message=f"the agent believes {key} goes {first_believed!r} → {wanted!r} (a "
        f"{believed_way}), but {where}, so this change would {real_way} "
        f"{'it' if single else 'them'}: {RESUBMIT}",
    )


def _way(before: float, after: float) -> str:
    return "raise" if after > before else "lower"


def _number(value: JsonValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _belief(assumptions: dict[str, JsonValue], unit_id: str, key: str) -> JsonValue:
    exact = f"units.{unit_id}.{key}"
    if exact in assumptions:
        return assumptions[exact]
    return next((v for p, v in assumptions.items() if "*" in p and _segments_match(exact, p)), None)


def _unit_key(path: str) -> str | None:
    parts = path.split(".")
    return parts[2] if len(parts) == 3 and parts[0] == "units" else None


def _lookup(observed: dict[str, JsonValue], path: str) -> dict[str, JsonValue] | None:
    if "*" not in path:
        return {path: observed[path]} if path in observed else None
    hits = {p: v for p, v in observed.items() if _segments_match(p, path)}
    return hits or None


def _segments_match(path: str, pattern: str) -> bool:
    parts, wanted = path.split("."), pattern.split(".")
    return len(parts) == len(wanted) and all(
        fnmatchcase(part, want) for part, want in zip(parts, wanted, strict=True)
    )


def _describe(wrong: dict[str, JsonValue]) -> str:
    if len(wrong) == 1:
        return repr(next(iter(wrong.values())))
    return "; ".join(f"{p} = {v!r}" for p, v in wrong.items())

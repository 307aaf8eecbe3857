"""Compare what the agent believed with what reconnaissance observed."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import JsonValue

from changegate.models import Finding, TargetObservation


def check_assumptions(
    assumptions: dict[str, JsonValue], observation: TargetObservation
) -> list[Finding]:
    """One finding for every assumption that does not hold, in the agent's order.

    A path may use `*` for one segment (`units.*.pool_size`): every unit must then match.
    A path that names nothing observable is a finding too: the agent believed in a value
    nobody can check.
    """
    observed = observation.paths()
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
        if wrong:
            shown = next(iter(wrong.values())) if len(wrong) == 1 else wrong
            findings.append(
                Finding(
                    code="stale-assumption",
                    severity="warn",
                    path=path,
                    expected=expected,
                    actual=shown,
                    message=f"the agent assumed {path} = {expected!r}, "
                    f"but it is {_describe(wrong)}",
                )
            )
    return findings


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

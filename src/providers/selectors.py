"""Strict selector checks that target kinds share: known keys only, DNS-label names, id lists.

A selector value ends up in URL paths, locks, policy scopes and search attributes, so a value
is either already canonical or refused. Nothing is trimmed, lowercased or decoded on the way:
that would let two different strings reach the same units under two different labels.
The one exception is a list of ids, whose order and repeats carry no meaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping

from changegate.errors import InvalidTarget
from changegate.models import Target
from changegate.models.request import UNIT_FILTER

SELECTOR_RULE = "target.selector"
UNIT_RULE = "target.unit"
KIND_RULE = "target.kind"

# An RFC 1123 label, as DNS hosts and Kubernetes names use it. Explicit ranges match ASCII
# only, and fullmatch (not `$`, which allows a trailing newline) anchors both ends.
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
LABEL_RULE = (
    "1-63 lowercase ASCII letters, digits and '-', starting and ending with a letter or digit"
)

_SHOWN_MAX = 80
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def selector_field(key: str) -> str:
    """The dotted path of a selector key, e.g. `target.selector.service`."""
    return (
        f"{SELECTOR_RULE}.{key}"
        if _FIELD_NAME.fullmatch(key)
        else f"{SELECTOR_RULE}[{_shown(key)}]"
    )


def check_keys(
    selector: Mapping[str, str],
    *,
    kind: str,
    required: Collection[str],
    optional: Collection[str] = (),
    example: str,
) -> None:
    """Refuse a selector with a key outside `required` and `optional`, or without a required one."""
    allowed = sorted({*required, *optional})
    unknown = sorted(set(selector) - set(allowed))
    if unknown:
        names = ", ".join(_shown(key) for key in unknown[:5])
        if len(unknown) > 5:
            names += f" and {len(unknown) - 5} more"
        raise InvalidTarget(
            rule=SELECTOR_RULE,
            field=selector_field(unknown[0]),
            reason=(
                f"{SELECTOR_RULE} has unknown key(s) {names}; a {kind} selector takes only "
                f"{', '.join(repr(key) for key in allowed)}, and any other key would make a "
                "second label for the same units"
            ),
            would_pass=f"the selector without {names}, e.g. {example}",
        )
    for key in sorted(required):
        if key not in selector:
            raise InvalidTarget(
                rule=SELECTOR_RULE,
                field=selector_field(key),
                reason=f"a {kind} target needs {selector_field(key)}",
                would_pass=f"a selector such as {example}",
            )


def dns_label(
    value: object, *, field: str, noun: str, example: str, rule: str = SELECTOR_RULE
) -> str:
    """`value` if it is a DNS label (see `LABEL_RULE`); otherwise `InvalidTarget` saying why."""
    if isinstance(value, str) and _LABEL.fullmatch(value):
        return value
    raise InvalidTarget(
        rule=rule,
        field=field,
        reason=f"{field} {_shown(value)} {_problem(value)}; a {noun} is {LABEL_RULE}",
        would_pass=_suggestion(value, field=field, noun=noun, example=example),
    )


def label_list(
    value: object, *, field: str, noun: str, example: str, rule: str = SELECTOR_RULE
) -> str:
    """The canonical form of a comma-separated list of DNS labels: sorted, each once."""
    if not isinstance(value, str) or not value:
        raise InvalidTarget(
            rule=rule,
            field=field,
            reason=f"{field} {_shown(value)} {_problem(value)}; it lists the {noun}s to change",
            would_pass=f"{field} such as {example!r}, or no {field} to change all of them",
        )
    entries = value.split(",")
    if "" in entries:
        raise InvalidTarget(
            rule=rule,
            field=field,
            reason=f"{field} {_shown(value)} has an empty entry; {noun}s are separated by single "
            "commas",
            would_pass=f"{field} such as {example!r}",
        )
    for entry in entries:
        if not _LABEL.fullmatch(entry):
            raise InvalidTarget(
                rule=rule,
                field=field,
                reason=(
                    f"{field} {_shown(value)} has the entry {_shown(entry)}, which "
                    f"{_problem(entry)}; "
                    f"each {noun} is {LABEL_RULE}, and entries are separated by ',' alone"
                ),
                would_pass=f"{field} such as {example!r}",
            )
    return ",".join(sorted(set(entries)))


def check_kind(target: Target, kind: str) -> None:
    """`InvalidTarget` unless `target` is of `kind` (a provider resolves only its own)."""
    if target.kind != kind:
        raise InvalidTarget(
            rule=KIND_RULE,
            field="target.kind",
            reason=f"target.kind {target.kind!a} is not {kind!r}, the only kind its provider "
            "resolves",
            would_pass=f"target.kind {kind!r}",
        )


def is_label(value: str) -> bool:
    """True if `value` is a DNS label (an id a kind may use for a unit)."""
    try:
        dns_label(value, field="name", noun="name", example="a")
    except InvalidTarget:
        return False
    return True


def selected_units(canonical: Target) -> set[str] | None:
    """The unit ids a canonical target's `instances` filter selects; None when it has none."""
    raw = canonical.selector.get(UNIT_FILTER)
    return set(raw.split(",")) if raw is not None else None


def selected_unit(canonical: Target, unit_id: str, *, noun: str, example: str) -> str:
    """`unit_id` if it is a valid id the canonical target selects, else `InvalidTarget`."""
    unit = dns_label(unit_id, field="unit_id", noun=noun, example=example, rule=UNIT_RULE)
    wanted = selected_units(canonical)
    if wanted is not None and unit not in wanted:
        raise InvalidTarget(
            rule=UNIT_RULE,
            field="unit_id",
            reason=f"unit_id {unit!r} is not selected by {canonical.label()} with "
            f"{selector_field(UNIT_FILTER)} {canonical.selector[UNIT_FILTER]!r}",
            would_pass=f"one of the selected units: {canonical.selector[UNIT_FILTER]}",
        )
    return unit


def _problem(value: object) -> str:
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if not value:
        return "is empty"
    if len(value) > 63:
        return f"is {len(value)} characters long"
    for char in value:
        if char in _LABEL_CHARS:
            continue
        if "A" <= char <= "Z":
            return "has uppercase letters; names are lowercase and compared exactly"
        if char.isspace():
            return f"contains whitespace ({char!a})"
        if not char.isascii():
            return f"contains U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')}), not ASCII"
        return f"contains {char!a}"
    return "starts or ends with '-'"


def _shown(value: object) -> str:
    # `ascii` rather than `repr`: a lookalike letter or a direction override shows as its
    # escape, so the refusal cannot itself be read as the name it imitates. Refusals are
    # stored and shown, so a long value is cut short.
    text = ascii(value)
    return text if len(text) <= _SHOWN_MAX else f"{text[: _SHOWN_MAX - 3]}..."


def _suggestion(value: object, *, field: str, noun: str, example: str) -> str:
    # Only a case or padding slip earns a concrete fix; anything else (a path, an encoding,
    # a lookalike) gets the example rather than a guess at what it was meant to reach.
    if isinstance(value, str) and value.isascii():
        fixed = value.strip().lower()
        if fixed != value and _LABEL.fullmatch(fixed):
            return f"{field} {fixed!r}"
    return f"a {noun} such as {example!r}"

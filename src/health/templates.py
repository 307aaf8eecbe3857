"""Analysis templates: a named PromQL query with placeholders and the conditions that judge it.

The idea is Argo Rollouts' AnalysisTemplate. A template's query may use

- `{{unit}}`          one unit's id; the query then runs once per unit;
- `{{units}}`         an RE2 alternation matching exactly the measured units; the query runs
                      once and its series are told apart by the template's `unit_label`;
- `{{selector.KEY}}`  the value of KEY in the target's selector.

Every placeholder must sit inside a quoted PromQL string (`instance="{{unit}}"`), and
`{{units}}` inside a regex matcher (`instance=~"{{units}}"`). That is checked when a template
is parsed, so at render time each value is escaped for the string it lands in: a unit id or
selector value holding `"`, `\\`, `}` or a newline stays one label value and cannot end the
matcher. In a regex matcher, `{{unit}}` and `{{selector.KEY}}` are regex-escaped as well, so
they match literally.

Conditions are `OP NUMBER` with OP one of `>`, `>=`, `<`, `<=`: a value meeting `failure`
fails; otherwise one missing `success` is inconclusive; otherwise it is successful.
Everything here is pure (no I/O), so policy and the workflow may import it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from changegate.errors import HealthSourceError
from changegate.models import Contract

TemplateName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
"""How templates are named: lower case, digits, `_`, `.` and `-`."""

Operator = Literal[">", ">=", "<", "<="]

_CONDITION = re.compile(r"^\s*(>=|<=|>|<)\s*(\S+)\s*$")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SELECTOR_KEY = re.compile(r"^selector\.([A-Za-z_][A-Za-z0-9_.-]{0,62})$")
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


class TemplateError(ValueError):
    """A template's query or condition is not well formed; the message says how to fix it."""


@dataclass(frozen=True)
class Condition:
    """`value OP threshold`, parsed from text such as `> 0.05`."""

    op: Operator
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether `value` meets the condition."""
        if self.op == ">":
            return value > self.threshold
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<":
            return value < self.threshold
        return value <= self.threshold

    def __str__(self) -> str:
        number = self.threshold
        text = str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
        return f"{self.op} {text}"


def parse_condition(text: str) -> Condition:
    """The condition `text` describes, or a `TemplateError` saying what a condition looks like."""
    match = _CONDITION.match(text)
    if match is None:
        raise TemplateError(
            f"condition {text!r} is not `OP NUMBER`; write e.g. '> 0.05' or '<= 250' "
            "(OP is one of >, >=, <, <=)"
        )
    op, number = match.groups()
    try:
        threshold = float(number)
    except ValueError:
        raise TemplateError(f"condition {text!r}: {number!r} is not a number") from None
    if not math.isfinite(threshold):
        raise TemplateError(f"condition {text!r}: the threshold must be a finite number")
    return Condition(op=op, threshold=threshold)  # type: ignore[arg-type]


def _normalised_condition(text: str) -> str:
    return str(parse_condition(text))


ConditionText = Annotated[str, AfterValidator(_normalised_condition)]


@dataclass(frozen=True)
class _Slot:
    """One placeholder in a query: where it is and what kind of string holds it."""

    start: int
    end: int
    name: str
    quote: str
    regex: bool


def _slots(query: str) -> list[_Slot]:
    """Every placeholder of `query`, refusing any that is not inside a quoted string."""
    slots: list[_Slot] = []
    quote = ""
    regex = False
    i = 0
    while i < len(query):
        if query.startswith("{{", i):
            match = _PLACEHOLDER.match(query, i)
            if match is None:
                raise TemplateError(
                    f"unclosed placeholder at offset {i} of {query!r}; write {{{{unit}}}}, "
                    "{{units}} or {{selector.KEY}}"
                )
            name = match.group(1)
            if quote not in ('"', "'"):
                where = "a `backtick` string" if quote == "`" else "no string"
                raise TemplateError(
                    f"placeholder {{{{{name}}}}} is in {where}; put it inside double quotes, "
                    'e.g. instance="{{unit}}", so its value is escaped as one label value'
                )
            slots.append(_Slot(i, match.end(), name, quote, regex))
            i = match.end()
            continue
        char = query[i]
        if quote:
            if char == "\\" and quote != "`":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
            before = query[:i].rstrip()
            regex = before.endswith(("=~", "!~"))
        i += 1
    if quote:
        raise TemplateError(f"unterminated {quote} string in query {query!r}")
    return slots


def check_query(query: str) -> list[str]:
    """The placeholders of a query, in order; a `TemplateError` for any that is misplaced."""
    names: list[str] = []
    for slot in _slots(query):
        if slot.name == "units":
            if not slot.regex:
                raise TemplateError(
                    "{{units}} is a regex alternation of the units; use it in a regex "
                    'matcher: instance=~"{{units}}"'
                )
        elif slot.name != "unit" and _SELECTOR_KEY.match(slot.name) is None:
            raise TemplateError(
                f"unknown placeholder {{{{{slot.name}}}}}; known: {{{{unit}}}}, {{{{units}}}}, "
                "{{selector.KEY}}"
            )
        names.append(slot.name)
    if "unit" in names and "units" in names:
        raise TemplateError(
            "a query uses {{unit}} (runs once per unit) or {{units}} (runs once for all "
            "units), not both"
        )
    return names


def escape_string(value: str, quote: str = '"') -> str:
    """`value` escaped for a PromQL string opened by `quote`; control characters as \\uXXXX."""
    out = []
    for char in value:
        if char == "\\" or char == quote:
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def escape_regex(value: str) -> str:
    """`value` as an RE2 pattern matching exactly itself."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


def units_regex(unit_ids: Sequence[str]) -> str:
    """An RE2 alternation matching exactly `unit_ids` (Prometheus anchors it)."""
    return "|".join(escape_regex(unit_id) for unit_id in unit_ids)


def render(
    query: str,
    *,
    selector: Mapping[str, str],
    unit: str | None = None,
    units: Sequence[str] = (),
) -> str:
    """`query` with every placeholder replaced by its escaped value.

    A `TemplateError` if the query is malformed; a `HealthSourceError` if it names a selector
    key the target's selector lacks, or `{{unit}}` without a unit.
    """
    check_query(query)
    parts: list[str] = []
    last = 0
    for slot in _slots(query):
        if slot.name == "units":
            raw = units_regex(units)
        else:
            if slot.name == "unit":
                if unit is None:
                    raise HealthSourceError("the query uses {{unit}} but no unit was given")
                raw = unit
            else:
                key = slot.name.removeprefix("selector.")
                if key not in selector:
                    raise HealthSourceError(
                        f"the query uses {{{{selector.{key}}}}} but the selector has no "
                        f"{key!r} (keys: {', '.join(sorted(selector)) or 'none'}); add it to "
                        "the request's target or use a template that does not need it"
                    )
                raw = selector[key]
            if slot.regex:
                raw = escape_regex(raw)
        parts.append(query[last : slot.start])
        parts.append(escape_string(raw, slot.quote))
        last = slot.end
    parts.append(query[last:])
    return "".join(parts)


class AnalysisTemplate(Contract):
    """A named query's PromQL and the conditions that judge each unit's value."""

    query: Annotated[str, Field(min_length=1, max_length=4000)]
    failure: ConditionText | None = Field(
        default=None, description="A value meeting this fails, e.g. '> 0.05'."
    )
    success: ConditionText | None = Field(
        default=None, description="A value not failing and not meeting this is inconclusive."
    )
    unit_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")] = "instance"
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _well_formed(self) -> AnalysisTemplate:
        check_query(self.query)
        if self.failure is None and self.success is None:
            raise TemplateError(
                "a template needs a failure or a success condition (or both), e.g. "
                "failure: '> 0.05'"
            )
        if self.failure is not None and self.success is not None:
            failure, success = parse_condition(self.failure), parse_condition(self.success)
            overlap = _overlap(failure, success)
            if overlap is not None:
                raise TemplateError(
                    f"failure '{failure}' and success '{success}' both hold at {overlap:g}; "
                    "a value must not be able to pass and fail at once"
                )
        return self

    @property
    def per_unit(self) -> bool:
        """Whether the query runs once per unit (it uses `{{unit}}`)."""
        return "unit" in check_query(self.query)

    def conditions(self) -> Conditions:
        """The parsed conditions."""
        return Conditions(
            failure=None if self.failure is None else parse_condition(self.failure),
            success=None if self.success is None else parse_condition(self.success),
        )


@dataclass(frozen=True)
class Conditions:
    """How one check judges a value beyond its `max`: a failure and a success condition."""

    failure: Condition | None = None
    success: Condition | None = None


def _overlap(failure: Condition, success: Condition) -> float | None:
    """A value meeting both conditions, if there is one."""
    candidates = [
        failure.threshold,
        success.threshold,
        (failure.threshold + success.threshold) / 2,
        failure.threshold + 1,
        failure.threshold - 1,
        success.threshold + 1,
        success.threshold - 1,
    ]
    return next((v for v in candidates if failure.holds(v) and success.holds(v)), None)

"""The `kubernetes` selector: which workloads of which cluster, checked by Kubernetes' own rules.

A selector names one kubeconfig `context`, one `namespace`, a workload `kind`
(`deployment` or `statefulset`) and either one workload `name` or a label selector
`labels`; `instances` narrows a label selector to some of the workloads it finds.
Every value is refused unless it is already in its canonical form: names by RFC 1123,
label selectors in the form the API server prints them (requirements sorted by key, set
values sorted, no spaces but the ones `in`/`notin` need). Two selectors reaching the same
workloads therefore always have the same label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from changegate.errors import InvalidTarget
from changegate.models import Target
from changegate.models.request import UNIT_FILTER
from changegate.providers.selectors import (
    KIND_RULE,
    SELECTOR_RULE,
    check_keys,
    dns_label,
    selector_field,
)

KIND_NAME = "kubernetes"
CONTEXT, NAMESPACE, WORKLOAD, NAME, LABELS = "context", "namespace", "kind", "name", "labels"
WORKLOADS = ("deployment", "statefulset")
EXAMPLE = (
    "{'context': 'prod-eu', 'namespace': 'shop', 'kind': 'deployment', "
    "'labels': 'app=web,tier=front'}"
)

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# kubeconfig context names are not Kubernetes objects; they are compared exactly, so case
# is meaningful, but whitespace, control and non-ASCII characters are refused.
_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_SET = re.compile(r"(?P<key>[^ !=(),]+) (?P<op>in|notin) \((?P<values>[^()]*)\)")
_BINARY = re.compile(r"(?P<key>[^ !=(),]+)(?P<op>!=|==|=)(?P<value>[^ !=(),]*)")
_UNARY = re.compile(r"(?P<op>!?)(?P<key>[^ !=(),]+)")

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]


class KubernetesSelector(BaseModel):
    """The keys a `kubernetes` selector takes (all strings, checked by `resolve`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    context: str
    namespace: str
    kind: Literal["deployment", "statefulset"]
    name: str | None = None
    labels: str | None = None
    instances: str | None = None


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector."""

    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def text(self) -> str:
        """The term as the API server prints it."""
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        return f"{self.key}{self.op}{self.values[0]}"


def resolve(target: Target) -> Target:
    """The canonical `kubernetes` target, or `InvalidTarget` naming the field and the rule."""
    if target.kind != KIND_NAME:
        raise InvalidTarget(
            rule=KIND_RULE,
            field="target.kind",
            reason=f"target.kind {target.kind!a} is not {KIND_NAME!r}",
            would_pass=f"target.kind {KIND_NAME!r}",
        )
    sel = target.selector
    check_keys(
        sel,
        kind=KIND_NAME,
        required=(CONTEXT, NAMESPACE, WORKLOAD),
        optional=(NAME, LABELS, UNIT_FILTER),
        example=EXAMPLE,
    )
    out = {
        CONTEXT: context_name(sel[CONTEXT]),
        NAMESPACE: dns_label(
            sel[NAMESPACE], field=selector_field(NAMESPACE), noun="namespace", example="shop"
        ),
        WORKLOAD: _workload(sel[WORKLOAD]),
    }
    if (NAME in sel) == (LABELS in sel):
        raise InvalidTarget(
            rule=SELECTOR_RULE,
            field=selector_field(NAME if NAME in sel else LABELS),
            reason="a kubernetes selector names one workload with `name` or selects workloads "
            "with `labels`, exactly one of the two",
            would_pass=EXAMPLE,
        )
    if NAME in sel:
        if UNIT_FILTER in sel:
            raise InvalidTarget(
                rule=SELECTOR_RULE,
                field=selector_field(UNIT_FILTER),
                reason="`instances` narrows a `labels` selector; a `name` selector has one unit",
                would_pass="the selector without `instances`",
            )
        out[NAME] = object_name(sel[NAME], field=selector_field(NAME), noun="workload name")
    else:
        out[LABELS] = label_selector(sel[LABELS], field=selector_field(LABELS))
    if UNIT_FILTER in sel:
        out[UNIT_FILTER] = name_list(sel[UNIT_FILTER], field=selector_field(UNIT_FILTER))
    return Target(kind=KIND_NAME, selector=out)


def context_name(value: str) -> str:
    """`value` if it can be a kubeconfig context name, compared exactly."""
    if _CONTEXT.fullmatch(value):
        return value
    raise InvalidTarget(
        rule=SELECTOR_RULE,
        field=selector_field(CONTEXT),
        reason=f"{selector_field(CONTEXT)} {ascii(value)[:80]} is not a kubeconfig context name "
        "changegate accepts: 1-253 ASCII letters, digits and '._@:/-', starting with a letter "
        "or digit, matched exactly (no trimming, no case folding)",
        would_pass="the context's name exactly as `kubectl config get-contexts` prints it",
    )


def object_name(value: str, *, field: str, noun: str) -> str:
    """`value` if it is an RFC 1123 subdomain, as Deployment and ConfigMap names are."""
    if len(value) <= 253 and _SUBDOMAIN.fullmatch(value):
        return value
    raise InvalidTarget(
        rule=SELECTOR_RULE,
        field=field,
        reason=f"{field} {ascii(value)[:80]} is not a {noun}: an RFC 1123 subdomain is at most "
        "253 lowercase ASCII letters, digits, '-' and '.', each dot-separated part starting "
        "and ending with a letter or digit",
        would_pass=f"a {noun} such as 'web' or 'web-v2'",
    )


def name_list(value: str, *, field: str) -> str:
    """A comma-separated list of workload names, canonically sorted with each name once."""
    entries = value.split(",")
    for entry in entries:
        object_name(entry, field=field, noun="workload name")
    return ",".join(sorted(set(entries)))


def label_selector(value: str, *, field: str) -> str:
    """`value` if it is a label selector in canonical form; otherwise refused with that form."""
    requirements = parse_labels(value, field=field)
    canonical = ",".join(r.text() for r in sorted(requirements, key=lambda r: (r.key, r.op)))
    keys = [r.key for r in requirements]
    if canonical != value or len(set(keys)) != len(keys):
        raise InvalidTarget(
            rule=SELECTOR_RULE,
            field=field,
            reason=f"{field} {ascii(value)[:80]} is a valid label selector but not in canonical "
            "form (requirements sorted by key, each key once, set values sorted, '=' not '==')",
            would_pass=f"{field} {canonical!r}"
            if len(set(keys)) == len(keys)
            else f"{field} with each key once",
        )
    return value


def parse_labels(value: str, *, field: str) -> list[Requirement]:
    """The requirements of a label selector; `InvalidTarget` for any syntax Kubernetes refuses."""
    if not value:
        raise _bad_labels(value, field, "is empty")
    terms = re.split(r",(?![^()]*\))", value)
    out: list[Requirement] = []
    for term in terms:
        if match := _SET.fullmatch(term):
            if not match["values"]:
                raise _bad_labels(value, field, f"has an empty set for {match['key']!r}")
            values = match["values"].split(",")
            for v in values:
                _check_label_value(v, value, field)
            if values != sorted(set(values)):
                raise _bad_labels(value, field, f"has set values {match['values']!r} out of order")
            op: Operator = "in" if match["op"] == "in" else "notin"
            out.append(Requirement(_check_key(match["key"], value, field), op, tuple(values)))
        elif match := _BINARY.fullmatch(term):
            if match["op"] == "==":
                raise _bad_labels(value, field, "uses '=='; the canonical form is '='")
            _check_label_value(match["value"], value, field)
            eq: Operator = "=" if match["op"] == "=" else "!="
            out.append(Requirement(_check_key(match["key"], value, field), eq, (match["value"],)))
        elif match := _UNARY.fullmatch(term):
            unary: Operator = "!" if match["op"] else "exists"
            out.append(Requirement(_check_key(match["key"], value, field), unary))
        else:
            raise _bad_labels(
                value,
                field,
                f"has the term {ascii(term)[:60]}, which is not "
                "'k=v', 'k!=v', 'k in (a,b)', 'k notin (a,b)', 'k' or '!k'",
            )
    return out


def _check_key(key: str, whole: str, field: str) -> str:
    prefix, _, name = key.rpartition("/")
    if "/" in key and not (len(prefix) <= 253 and _SUBDOMAIN.fullmatch(prefix)):
        raise _bad_labels(whole, field, f"has the key {key!a} whose prefix is not a DNS subdomain")
    if not _LABEL_NAME.fullmatch(name):
        raise _bad_labels(
            whole,
            field,
            f"has the key {key!a}; a label name is 1-63 ASCII "
            "letters, digits, '-', '_' and '.', starting and ending alphanumeric",
        )
    return key


def _check_label_value(label: str, whole: str, field: str) -> None:
    if not _LABEL_VALUE.fullmatch(label):
        raise _bad_labels(
            whole,
            field,
            f"has the value {label!a}; a label value is at most "
            "63 ASCII letters, digits, '-', '_' and '.', starting and ending "
            "alphanumeric",
        )


def _bad_labels(value: str, field: str, problem: str) -> InvalidTarget:
    return InvalidTarget(
        rule=SELECTOR_RULE,
        field=field,
        reason=f"{field} {ascii(value)[:80]} {problem}",
        would_pass=f"{field} such as 'app=web,tier=front'",
    )


def _workload(value: str) -> str:
    if value in WORKLOADS:
        return value
    raise InvalidTarget(
        rule=SELECTOR_RULE,
        field=selector_field(WORKLOAD),
        reason=f"{selector_field(WORKLOAD)} {ascii(value)[:80]} is not a workload kind "
        "changegate changes; it takes 'deployment' or 'statefulset', lowercase",
        would_pass=f"{selector_field(WORKLOAD)} 'deployment'",
    )

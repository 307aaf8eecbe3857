"""Read a policy file (YAML) into a `Policy`, or explain precisely why it is not one."""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from changegate.errors import ChangegateError
from changegate.policy.model import Policy

DEFAULT_POLICY = "default.yaml"
# Sources are told apart by `kind`; the tag pydantic puts in an error's location is noise.
_UNION_TAGS = frozenset({"file", "http"})


class PolicyProblem(NamedTuple):
    """One thing wrong with a policy: where (`risk_tiers.high.approvals`), and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class PolicyError(ChangegateError):
    """The policy file is missing, is not YAML, or does not describe a valid policy."""

    def __init__(self, message: str, *, problems: list[PolicyProblem] | None = None) -> None:
        """`message` for people; `problems`, each at its path, when the YAML parsed."""
        super().__init__(message)
        self.problems = problems or []


class _Loader(yaml.SafeLoader):
    """Safe YAML without base-60 integers, so `start_time: 10:00` stays a time, not 600;
    a key written twice in one mapping is an error, not silently the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {first.line + 1}); keep one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def load_policy(path: Path | None) -> Policy:
    """The policy in `path`, or the shipped default when `path` is None."""
    if path is None:
        source = resources.files("changegate.policy").joinpath(DEFAULT_POLICY)
        return parse_policy(source.read_text(encoding="utf-8"), source=f"(default) {source}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from exc
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """The policy described by YAML `text`; `source` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{source}{where}: not valid YAML: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(
            f"{source}: a policy is a mapping of sections (agents, risk_tiers, ...), "
            f"not a {type(data).__name__}"
        )
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = policy_problems(exc)
        lines = [f"- {problem}" for problem in problems]
        raise PolicyError(
            f"{source} is not a valid policy:\n" + "\n".join(lines), problems=problems
        ) from exc


def describe_errors(exc: ValidationError) -> list[str]:
    """One `field.path: reason` line per problem pydantic found."""
    return [str(problem) for problem in policy_problems(exc)]


# A whole-policy check names each problem's section itself: `risk_tiers.high: needs ...`.
_SECTION_PROBLEM = re.compile(r"^(?P<path>[a-z_]+(?:\.[\w-]+)*): (?P<reason>.+)$")


def policy_problems(exc: ValidationError) -> list[PolicyProblem]:
    """Each problem pydantic found, at its path in the policy file."""
    problems = []
    for error in exc.errors(include_url=False):
        path = _path(error["loc"])
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = _unknown_field(error["loc"])
        parts = [_SECTION_PROBLEM.match(part) for part in reason.split("; ")]
        if not path and all(parts):
            problems += [PolicyProblem(m["path"], m["reason"]) for m in parts if m]
        else:
            problems.append(PolicyProblem(path, reason))
    return problems


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif index > 0 and isinstance(loc[index - 1], int) and part in _UNION_TAGS:
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown field '{name}'"
    known = list(model.model_fields)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field '{name}'; {hint}expected one of: {', '.join(known)}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The policy model class found by following `loc` from `Policy`, if any."""
    current: Any = Policy
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        elif get_origin(current) in (Union, UnionType):
            current = next((m for m in get_args(current) if _tag_of(m) == part), None)
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return _unwrap(args[0])
    return annotation


def _tag_of(member: Any) -> object:
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return None
    field = member.model_fields.get("kind")
    return get_args(field.annotation)[0] if field is not None else None

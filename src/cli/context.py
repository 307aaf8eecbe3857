"""What every CLI command shares: settings from flags and environment, errors and exit codes.

Exit codes (`changegate.errors.ExitCode`; an error's code comes from `ERROR_TABLE`, the
table the API's statuses come from too): 0 success; 1 the change ended other than DONE
(with `--wait`) or the demo's story did not hold; 2 invalid input (the message names the
field and what would pass); 3 no such change; 4 the API, Temporal, a worker or the fleet
unreachable; 5 refused by a rule (admission, a decision that does not count, a missing or
unknown token): the message names the rule, why, and what would pass.

With `--json` (or `-o json`, before or after the subcommand) an error is one JSON object on
stderr, `{"error": {"rule", "reason", "would_pass"}}`: the API's error body, key for key,
with `retry_after` (whole seconds) on a rate refusal, which the text output prints too.

Commands for agents, approvers and operators talk to the API (the front door) with the
caller's token; only the commands that run servers (`up`, `api`, `worker`, `demo`) and
`token` (which writes the store directly) touch Temporal or the store themselves.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click
from pydantic import ValidationError

from changegate.client import ChangeClient, load_credentials
from changegate.errors import ChangegateError, ExitCode, kind_of, rule_of
from changegate.settings import Settings

EXIT_OUTCOME = ExitCode.OUTCOME
EXIT_INVALID = ExitCode.INVALID
EXIT_NOT_FOUND = ExitCode.NOT_FOUND
EXIT_UNREACHABLE = ExitCode.UNREACHABLE
EXIT_REFUSED = ExitCode.REFUSED

T = TypeVar("T")

_RULE_BY_CODE: dict[int, str] = {
    EXIT_OUTCOME: "outcome",
    EXIT_INVALID: "schema",
    EXIT_NOT_FOUND: "not_found",
    EXIT_UNREACHABLE: "service.unavailable",
    EXIT_REFUSED: "refused",
}
"""The rule an error names when nothing more precise does: the API's rule for the same case."""


class Context:
    """Per-invocation state: the settings and whether to print JSON."""

    def __init__(self, settings: Settings, *, as_json: bool) -> None:
        """Hold the resolved settings."""
        self.settings = settings
        self.as_json = as_json

    def api(self) -> ChangeClient:
        """A client of the API with the caller's token (environment or stored login)."""
        return ChangeClient(load_credentials(self.settings))

    def emit(self, data: Any, text: str) -> None:
        """`data` as JSON with --json, else `text`."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            click.echo(text)


def current() -> Context | None:
    """The invocation's `Context`, once the group has made it."""
    click_ctx = click.get_current_context(silent=True)
    return None if click_ctx is None else click_ctx.find_object(Context)


def fail(
    message: str,
    code: int,
    *,
    rule: str | None = None,
    reason: str | None = None,
    would_pass: str = "",
    **extra: Any,
) -> NoReturn:
    """Print an error to stderr and exit with `code`; under --json, the API's error body.

    `message` is the text a person reads; `rule`, `reason` (default: `message`) and
    `would_pass` fill the JSON body, `extra` adds keys to it (e.g. `fields`).
    """
    ctx = current()
    if ctx is not None and ctx.as_json:
        body = {
            "rule": rule or _RULE_BY_CODE.get(code, "error"),
            "reason": message if reason is None else reason,
            "would_pass": would_pass,
            **extra,
        }
        click.echo(json.dumps({"error": body}, sort_keys=True, default=str), err=True)
    else:
        click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    raise SystemExit(code)


def validation_message(exc: ValidationError, *, source: str) -> str:
    """Each error as `field.path: reason (got ...)`, one per line."""
    lines = [f"{source} is not a valid change request ({exc.error_count()} problem(s)):"]
    lines += [f"  {field['path']}: {field['message']}" for field in validation_fields(exc)]
    lines.append(EXAMPLE_HINT)
    return "\n".join(lines)


EXAMPLE_HINT = "run `changegate example [KIND]` for a complete, commented request"
"""Where every error about a malformed request points."""


def validation_fields(exc: ValidationError) -> list[dict[str, str]]:
    """Each error as `{"path", "message"}`, the shape of the API's `fields`."""
    fields = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        fields.append({"path": path, "message": f"{err['msg']}{got}"})
    return fields


def run(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T | None]:
    """Run an async command body and map known errors to messages and exit codes."""

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return asyncio.run(coro_fn(*args, **kwargs))
        except ChangegateError as exc:
            code = kind_of(exc).exit_code
            reason = getattr(exc, "reason", None)
            retry_after = getattr(exc, "retry_after", None)
            waits = {} if retry_after is None else {"retry_after": math.ceil(retry_after)}
            fail(
                error_message(exc, code),
                code,
                rule=rule_of(exc),
                reason=reason if isinstance(reason, str) else str(exc),
                would_pass=str(getattr(exc, "would_pass", "") or ""),
                **waits,
            )

    return wrapper


def error_message(exc: ChangegateError, code: ExitCode) -> str:
    """What to print for an error: a refusal's rule, why and what would pass; else its text."""
    reason = getattr(exc, "reason", None)
    if not isinstance(reason, str):
        return str(exc)
    rule = getattr(exc, "rule", None)
    would_pass = str(getattr(exc, "would_pass", ""))
    if code in (EXIT_REFUSED, EXIT_INVALID) and isinstance(rule, str):
        retry_after = getattr(exc, "retry_after", None)
        wait = "" if retry_after is None else f"\n  retry after: {math.ceil(retry_after)} s"
        return refusal_message(rule, reason, would_pass) + wait
    if code == EXIT_NOT_FOUND:
        return reason
    return f"{reason}; {would_pass}" if would_pass else reason


def refusal_message(rule: str, reason: str, would_pass: str) -> str:
    """`refused by rule R`, why, and what would pass, one per line."""
    text = f"refused by rule {rule}\n  why: {reason}"
    return text + (f"\n  would pass: {would_pass}" if would_pass else "")


pass_context = click.make_pass_decorator(Context)

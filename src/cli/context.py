"""What every CLI command shares: settings from flags and environment, errors and exit codes.

Exit codes: 0 success; 1 the change ended other than DONE (with `--wait`) or the demo's
story did not hold; 2 invalid input (the message names the field and what would pass);
3 no such change; 4 the API, Temporal or the fleet unreachable; 5 refused by a rule
(admission, a decision that does not count, a missing or unknown token): the message
names the rule, why, and what would pass.

Commands for agents, approvers and operators talk to the API (the front door) with the
caller's token; only the commands that run servers (`up`, `api`, `worker`, `demo`) and
`token` (which writes the store directly) touch Temporal or the store themselves.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from changegate.admission import AdmissionRefused
from changegate.client import (
    ApiError,
    ChangeClient,
    InvalidInput,
    NotFound,
    Refused,
    Unauthenticated,
    Unavailable,
    load_credentials,
)
from changegate.service import ChangeNotFound, TemporalUnreachable
from changegate.settings import Settings

EXIT_OUTCOME, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_REFUSED = 1, 2, 3, 4, 5

T = TypeVar("T")


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


def fail(message: str, code: int) -> None:
    """Print an error to stderr and exit with `code`."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    raise SystemExit(code)


def validation_message(exc: ValidationError, *, source: str) -> str:
    """Each error as `field.path: reason (got ...)`, one per line."""
    lines = [f"{source} is not a valid change request ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        lines.append(f"  {path}: {err['msg']}{got}")
    lines.append("see `changegate submit --help` or the README for a complete example")
    return "\n".join(lines)


def run(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T | None]:
    """Run an async command body and map known errors to messages and exit codes."""

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return asyncio.run(coro_fn(*args, **kwargs))
        except TemporalUnreachable as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        except ChangeNotFound as exc:
            fail(str(exc), EXIT_NOT_FOUND)
        except (AdmissionRefused, Refused, Unauthenticated) as exc:
            fail(refusal_message(exc.rule, exc.reason, exc.would_pass), EXIT_REFUSED)
        except NotFound as exc:
            fail(exc.reason, EXIT_NOT_FOUND)
        except InvalidInput as exc:
            fail(refusal_message(exc.rule, exc.reason, exc.would_pass), EXIT_INVALID)
        except Unavailable as exc:
            fail(
                f"{exc.reason}; {exc.would_pass}" if exc.would_pass else exc.reason,
                EXIT_UNREACHABLE,
            )
        except ApiError as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        return None

    return wrapper


def refusal_message(rule: str, reason: str, would_pass: str) -> str:
    """`refused by rule R`, why, and what would pass, one per line."""
    text = f"refused by rule {rule}\n  why: {reason}"
    return text + (f"\n  would pass: {would_pass}" if would_pass else "")


pass_context = click.make_pass_decorator(Context)

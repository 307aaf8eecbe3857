"""Run one call of the command contract: the executable, JSON in on stdin, JSON out on stdout.

The executable is started with `asyncio.create_subprocess_exec` (no shell), its argv from
settings, an environment holding only the allowlisted variables, and its own process group,
so a timeout or a cancelled activity ends it and anything it started. Its exit status and
answer are mapped to changegate errors here, once:

    exit 0              the answer on stdout is the call's result (a JSON object)
    exit 2              the request is refused: bad operation or parameters (UnsupportedOperation)
    exit 3              the target or unit does not exist (TargetNotFound)
    exit 75             temporarily unavailable, try again (TargetUnavailable, retried)
    timeout             no answer within timeout_seconds (TargetTimeout, retried)
    anything else       the executable failed (ProviderError, not retried)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import TypeVar

from pydantic import BaseModel, JsonValue, ValidationError

from changegate.errors import (
    ProviderError,
    TargetNotFound,
    TargetTimeout,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.kinds.command.schema import CONTRACT, Call, CommandTarget, ErrorAnswer
from changegate.redaction import redact_text

EXIT_REFUSED = 2
EXIT_NOT_FOUND = 3
EXIT_TEMPFAIL = 75
_SHOWN_MAX = 400

Answer = TypeVar("Answer", bound=BaseModel)


async def call(
    name: str,
    target: CommandTarget,
    call: Call,
    request: dict[str, JsonValue],
    answer: type[Answer],
) -> Answer:
    """Run `call` on the executable of target `name` and return its checked answer."""
    payload = json.dumps(
        {"contract": CONTRACT, "call": call, "target": name, **request},
        allow_nan=False,
    ).encode()
    what = f"command target {name!r} ({call})"
    env = {key: os.environ[key] for key in target.env_allowlist if key in os.environ}
    try:
        process = await asyncio.create_subprocess_exec(
            *target.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=target.cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise ProviderError(
            f"{what} could not start {target.argv[0]!r}: {exc.strerror or exc!r}; check the "
            "target's argv in CHANGEGATE_COMMAND_TARGETS"
        ) from exc
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(payload), timeout=target.timeout_seconds
        )
    except TimeoutError:
        await _end(process)
        raise TargetTimeout(
            f"{what} did not answer within {target.timeout_seconds:g}s and was stopped"
        ) from None
    except BaseException:
        # A cancelled activity must not leave the executable running on its own.
        await _end(process)
        raise
    code = process.returncode
    if code == 0:
        return _parse(stdout, answer, what=what)
    reason = _reason(stdout, stderr)
    if code == EXIT_REFUSED:
        raise UnsupportedOperation(f"{what} refused the request: {reason}")
    if code == EXIT_NOT_FOUND:
        raise TargetNotFound(f"{what} found no such target or unit: {reason}")
    if code == EXIT_TEMPFAIL:
        raise TargetUnavailable(f"{what} is unavailable for now (exit 75): {reason}")
    ended = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
    raise ProviderError(f"{what} failed ({ended}): {reason}")


async def _end(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await process.wait()


def _parse(stdout: bytes, answer: type[Answer], *, what: str) -> Answer:
    try:
        document = json.loads(stdout, parse_constant=_refuse_constant)
        return answer.model_validate(document)
    except (ValueError, ValidationError) as exc:
        problem = _first_error(exc)
        raise ProviderError(
            f"{what} exited 0 but its stdout is not a valid {answer.__name__}: {problem}; "
            "see the command contract in changegate.kinds.command"
        ) from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the answer"
        return f"{where}: {error['msg']}"
    return str(exc)[:_SHOWN_MAX]


def _reason(stdout: bytes, stderr: bytes) -> str:
    with contextlib.suppress(ValueError, ValidationError):
        return _shown(ErrorAnswer.model_validate_json(stdout).error)
    lines = stderr.decode(errors="replace").strip().splitlines()
    return _shown(lines[-1]) if lines else "no error message on stdout or stderr"


def _shown(text: str) -> str:
    # Failures are stored in workflow history: redact, and keep them short.
    text = redact_text(text)
    return text if len(text) <= _SHOWN_MAX else f"{text[: _SHOWN_MAX - 3]}..."

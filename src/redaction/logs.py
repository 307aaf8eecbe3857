"""Log records are redacted as they are made, whichever logger or handler takes them."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any

from changegate.redaction.redact import redact_text

_installed = False


def install_log_redaction() -> None:
    """Redact the message, arguments and traceback of every log record from now on.

    A record factory rather than a handler filter: uvicorn and Temporal add handlers and
    loggers of their own that do not propagate to the root, and a factory sees them all.
    Installing twice is harmless.
    """
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def redacted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make(*args, **kwargs))

    logging.setLogRecordFactory(redacted)
    _installed = True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """`record` with its message, arguments and traceback redacted.

    Arguments are redacted one by one rather than merged into the message, because some
    formatters (uvicorn's access log) read them.
    """
    if isinstance(record.msg, str):
        record.msg = redact_text(record.msg)
    else:
        record.msg = redact_text(str(record.msg))
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(arg) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {key: _redact_arg(arg) for key, arg in record.args.items()}
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info))
        record.exc_text = redact_text(text.rstrip("\n"))
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


def _redact_arg(arg: object) -> object:
    if arg is None or isinstance(arg, int | float):
        return arg
    return redact_text(arg if isinstance(arg, str) else str(arg))

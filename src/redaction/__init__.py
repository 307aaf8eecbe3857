"""Secrets never reach workflow history, the store, logs or any page: redact them first."""

from changegate.redaction.logs import install_log_redaction
from changegate.redaction.patterns import MASK
from changegate.redaction.redact import redact_optional, redact_request, redact_text, redact_value

__all__ = [
    "MASK",
    "install_log_redaction",
    "redact_optional",
    "redact_request",
    "redact_text",
    "redact_value",
]

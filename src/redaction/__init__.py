"""Secrets never reach workflow history, the store, logs or any page: redact them first."""

from changegate.redaction.patterns import MASK
from changegate.redaction.redact import redact_request, redact_text, redact_value

__all__ = ["MASK", "redact_request", "redact_text", "redact_value"]

"""Context sources: what else is true about a target, read during VALIDATE."""

from changegate.context.sources import (
    ContextDocument,
    ContextSource,
    ContextSourceError,
    FileContextSource,
    HttpContextSource,
    gather_flags,
)

__all__ = [
    "ContextDocument",
    "ContextSource",
    "ContextSourceError",
    "FileContextSource",
    "HttpContextSource",
    "gather_flags",
]

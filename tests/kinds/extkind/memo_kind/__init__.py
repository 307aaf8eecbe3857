"""The `memo` kind: notes on boards, kept in one JSON file; a kind from outside changegate."""

from memo_kind.kind import KIND, MemoKind
from memo_kind.provider import MemoHealth, MemoProvider, memo_file

__all__ = ["KIND", "MemoHealth", "MemoKind", "MemoProvider", "memo_file"]

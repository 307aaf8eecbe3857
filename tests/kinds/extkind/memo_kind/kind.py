"""The memo kind object: selector, one operation, one metric, provider and health source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from changegate.kinds import Metric, Operation, Parameters
from changegate.settings import Settings
from memo_kind.provider import MemoHealth, MemoProvider, memo_file


class MemoSelector(BaseModel):
    """A board, optionally narrowed to some of its notes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    board: str = Field(description="The board (a DNS label), e.g. 'ops'.")
    instances: str | None = Field(default=None, description="Comma-separated note ids.")


class SetNote(Parameters):
    """What to write on each note."""

    text: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    priority: Annotated[int, Field(ge=0, le=9)] | None = None


class MemoKind:
    """Notes on boards in a JSON file."""

    name = "memo"
    description = "Notes on boards, kept in a JSON file (a test kind installed separately)."
    selector = MemoSelector
    operations: Mapping[str, Operation] = {
        "set_note": Operation(
            name="set_note",
            description="Set text and/or priority on each selected note.",
            parameters=SetNote,
        )
    }
    metrics: Mapping[str, Metric] = {
        "error_rate": Metric(
            name="error_rate",
            description="The note's own error_rate field (0 when absent).",
            query='memo_error_rate{board="{{selector.board}}",note=~"{{units}}"}',
        )
    }

    def provider(self, settings: Settings) -> MemoProvider:
        """Notes in the file `memo_file(settings)` names."""
        return MemoProvider(memo_file(settings))

    def health_source(self, settings: Settings) -> MemoHealth:
        """Reads each note's `error_rate` from the same file."""
        return MemoHealth(memo_file(settings))


KIND = MemoKind()

"""A change as a listing shows it: what Temporal's visibility store knows without a worker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChangeRef(BaseModel):
    """A change in a listing: its id, its workflow's status and its search attributes.

    The same shape in the service, the HTTP API, the MCP tools and `changegate list`.
    Attributes are plain strings, not enums: a listing shows whatever a workflow recorded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    change_id: str
    workflow_status: str = Field(description="The workflow's status: RUNNING, COMPLETED, ...")
    agent: str | None = None
    target: str | None = Field(default=None, description="The canonical target label.")
    stage: str | None = Field(default=None, description="The stage; ENDED once finished.")
    outcome: str | None = Field(default=None, description="How it ended; null while running.")


__all__ = ["ChangeRef"]

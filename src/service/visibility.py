"""Temporal visibility queries for changes: one builder, and one way to quote a value in them.

Every listing (the API, the MCP tools, kill switches, the approval page) asks Temporal
through `change_query`, so a filter value reaches a query only as an escaped literal.
"""

from __future__ import annotations

from changegate.models import Outcome, Stage

__all__ = ["change_query", "quote"]

_CHANGES = "WorkflowType = 'ChangeWorkflow'"
_RUNNING = "'Running'"


def quote(value: str) -> str:
    """`value` as a query string literal: backslashes and single quotes are escaped.

    Backslashes first, so an escape the value itself supplies cannot end the literal.
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def change_query(
    *,
    agent: str | None = None,
    target: str | None = None,
    stage: Stage | None = None,
    outcome: Outcome | None = None,
    risk: str | None = None,
    running: bool | None = None,
) -> str:
    """The query for changes matching every filter given; with none, every change.

    `running` True keeps changes whose workflow still runs, False those that closed.
    """
    clauses = [_CHANGES]
    for key, value in (
        ("ChangeAgent", agent),
        ("ChangeTarget", target),
        ("ChangeStage", stage),
        ("ChangeOutcome", outcome),
        ("ChangeRisk", risk),
    ):
        if value is not None:
            clauses.append(f"{key} = {quote(value)}")
    if running is not None:
        clauses.append(f"ExecutionStatus {'=' if running else '!='} {_RUNNING}")
    return " AND ".join(clauses)

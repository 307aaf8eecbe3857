"""Notices from the front door: breakers and kill switches, sent without a change.

`publish` starts the same `NotifyWorkflow` a change starts, with the notice's event id as
its workflow id: sending one event twice delivers it once. `operation_notice` turns an
operator event (`kind` in breaker_tripped, kill_switch_engaged, kill_switch_released) into
a notice; `notify_hook` is both, as the front door's `on_event` hook.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, JsonValue
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from changegate.models import IncidentSeverity, Notice, NoticeKind
from changegate.redaction import redact_optional, redact_value
from changegate.workflows.notify import NotifyWorkflow

if TYPE_CHECKING:  # settings import the channels of this package
    from changegate.settings import Settings

OPERATION_KINDS = frozenset(
    {
        NoticeKind.BREAKER_TRIPPED,
        NoticeKind.KILL_SWITCH_ENGAGED,
        NoticeKind.KILL_SWITCH_RELEASED,
    }
)

# Fields of an operator event that the notice names on its own; the rest go to `details`.
_NAMED = {"kind", "event_id", "id", "at", "actor", "reason", "agent_id", "severity"}
_NAMED |= {"incident_id", "scope", "mode", "trigger", "breaker", "target"}


async def publish(client: Client, notice: Notice, *, settings: Settings) -> bool:
    """Deliver `notice` through the worker's channels; False when no channel takes its kind
    or the event was already sent (then nothing is started)."""
    if notice.kind not in settings.notify_kinds():
        return False
    # Imported here: the signing key's module reads the settings, which import this package.
    from changegate.authority import Signer, load_signing_key

    signer = Signer(await asyncio.to_thread(load_signing_key, settings))
    try:
        await client.start_workflow(
            NotifyWorkflow.run,
            signer.sign_notice(notice),
            id=notice.event_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"notify: {notice.kind.value}",
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


def notify_hook(client: Client, *, settings: Settings) -> Callable[[BaseModel], Awaitable[None]]:
    """An `on_event` hook for the front door's operations: each event becomes a notice."""

    async def hook(event: BaseModel) -> None:
        await publish(client, operation_notice(event), settings=settings)

    return hook


def operation_notice(event: BaseModel) -> Notice:
    """The notice for an operator event: a breaker trip, a kill switch engaged or released.

    Read from the event: `kind` (required), `event_id` or `id`, `at`, `actor`, `reason`,
    `agent_id`, `scope`, `mode`, `trigger` or `breaker`, `severity` and `incident_id`;
    anything else lands in `details`. Free text is redacted. Without an id, the id is a
    digest of the event with its `at` (the time of the call if it has none), so the same
    event sent twice is delivered once.
    """
    raw: dict[str, Any] = event.model_dump(mode="json")
    named_kind = str(raw.get("kind"))
    if named_kind not in OPERATION_KINDS:
        allowed = ", ".join(sorted(k.value for k in OPERATION_KINDS))
        raise ValueError(f"an operator event's kind must be one of {allowed}, not {named_kind}")
    kind = NoticeKind(named_kind)
    at = _when(raw.get("at"))
    digest = hashlib.sha256(
        json.dumps({**raw, "at": at.isoformat()}, sort_keys=True, default=str).encode()
    ).hexdigest()[:20]
    event_id = str(raw.get("event_id") or raw.get("id") or digest)
    scope = raw.get("scope") or (f"agent:{raw['agent_id']}" if raw.get("agent_id") else None)
    severity = raw.get("severity")
    extra = {k: v for k, v in raw.items() if k not in _NAMED}
    details = redact_value(extra)
    return Notice(
        event_id=f"notice-{kind.value}-{event_id}",
        kind=kind,
        at=at,
        title=_title(kind, raw, scope),
        summary=redact_optional(raw.get("reason")) or "",
        target=raw.get("target"),
        agent=raw.get("agent_id"),
        actor=raw.get("actor"),
        incident_id=raw.get("incident_id"),
        severity=IncidentSeverity(severity) if severity else None,
        details=details if isinstance(details, dict) else {},
    )


def _title(kind: NoticeKind, raw: dict[str, Any], scope: str | None) -> str:
    by = f" by {raw['actor']}" if raw.get("actor") else ""
    if kind == NoticeKind.KILL_SWITCH_ENGAGED:
        mode = f" ({raw['mode']})" if raw.get("mode") else ""
        return f"kill switch {scope or 'global'} engaged{mode}{by}"
    if kind == NoticeKind.KILL_SWITCH_RELEASED:
        return f"kill switch {scope or 'global'} released{by}"
    breaker = raw.get("trigger") or raw.get("breaker") or "circuit breaker"
    whose = f" for agent {raw['agent_id']}" if raw.get("agent_id") else ""
    mode = f": {raw['mode']}" if raw.get("mode") else ""
    return f"{breaker} tripped{whose}{mode}"


def _when(value: JsonValue) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return datetime.now(UTC)

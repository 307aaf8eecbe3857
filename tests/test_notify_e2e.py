"""Notices reach a real local HTTP receiver from a worker on the dev server.

One worker of this module's own, on its own task queue, has every kind of channel: a
generic webhook, a Slack-compatible one, a PagerDuty-compatible one, the legacy escalation
webhook, a flaky webhook (500 on each event's first post) and a webhook nobody listens on
(for BLOCKED notices). The receiver records every post and what it answered.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest
from pydantic import BaseModel, SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.worker import Worker

from changegate.models import ChangeStatus, Control, Notice, NoticeKind, Outcome, Stage
from changegate.notify import (
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    notify_hook,
    operation_notice,
    publish,
)
from changegate.service import ChangeService
from changegate.service.operations import Operations
from changegate.settings import Settings
from changegate.worker import running_worker
from changegate.workflows.notify import NotifyWorkflow
from tests.support import Fleet, approve_fully, free_port, make_request, wait_for_stage, wait_until
from tests.test_freeze_e2e import drive_to_sev2
from tests.test_incident_e2e import decoded_payloads

pytestmark = pytest.mark.e2e

ROUTING_KEY = "R0UT1NGKEY" + uuid.uuid4().hex
HOOK_TOKEN = "T0KEN" + uuid.uuid4().hex
# Every approver the test policy lists, for a tier that demands no role.
ALL_APPROVERS = ["alice", "bob", "carol", "recorder"]


@dataclass
class Post:
    """One request the receiver got, and the status it answered."""

    path: str
    body: dict[str, Any]
    key: str
    status: int


@dataclass
class Receiver:
    """A real HTTP server on loopback that records posts; `/flaky/` fails each key once."""

    url: str = ""
    posts: list[Post] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, key: str) -> int:
        with self.lock:
            seen = any(p.path == path and p.key == key for p in self.posts)
        return 500 if path.startswith("/flaky/") and not seen else 200

    def got(self, path: str, body: dict[str, Any], key: str, status: int) -> None:
        with self.lock:
            self.posts.append(Post(path, body, key, status))

    def delivered(self, path: str, *, event_id: str) -> list[dict[str, Any]]:
        """Bodies `path` answered 200 for, for one event."""
        with self.lock:
            return [
                p.body
                for p in self.posts
                if p.path == path and p.key == event_id and p.status == 200
            ]

    def about(self, change_id: str) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if change_id in json.dumps(p.body)]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            key = self.headers.get("Idempotency-Key", "")
            status = found.answer(self.path, key)
            found.got(self.path, body, key, status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def notify_settings(settings: Settings, receiver: Receiver) -> Settings:
    base = receiver.url
    channels = [
        WebhookChannel(name="hook", url=SecretStr(f"{base}/hook/{HOOK_TOKEN}")),
        SlackChannel(name="chat", url=SecretStr(f"{base}/slack/{HOOK_TOKEN}")),
        PagerDutyChannel(
            name="pager", url=SecretStr(f"{base}/pd"), routing_key=SecretStr(ROUTING_KEY)
        ),
        WebhookChannel(name="flaky", url=SecretStr(f"{base}/flaky/{HOOK_TOKEN}")),
        WebhookChannel(
            name="down",
            url=SecretStr(f"http://127.0.0.1:{free_port()}/{HOOK_TOKEN}"),
            events=["blocked"],  # type: ignore[list-item]
        ),
    ]
    return Settings.model_validate(
        {
            **settings.model_dump(exclude={"notify_channels", "escalation_webhook"}),
            "task_queue": f"notify-{uuid.uuid4().hex[:8]}",
            "reconcile_interval_seconds": 0,
            "notify_channels": [c.model_dump() for c in channels],
            "escalation_webhook": SecretStr(f"{base}/legacy/{HOOK_TOKEN}"),
        }
    )


@pytest.fixture(scope="module")
async def notify_worker(client: Client, notify_settings: Settings) -> AsyncIterator[Worker]:
    async with running_worker(client, notify_settings) as running:
        yield running


@pytest.fixture
def notified(
    client: Client, notify_settings: Settings, notify_worker: Worker
) -> Iterator[ChangeService]:
    """A front door whose settings configure the channels, and a worker that has them."""
    changes = ChangeService(client, notify_settings)
    yield changes
    changes.close()


async def one_post(receiver: Receiver, path: str, change_id: str, kind: str) -> dict[str, Any]:
    """The single body `path` took for the change's `kind` notice, once it arrived.

    The generic webhook's body names the kind; every channel's post carries the event id
    as its `Idempotency-Key`.
    """

    def arrived() -> list[dict[str, Any]]:
        ids = {
            p.key
            for p in receiver.about(change_id)
            if p.path.startswith("/hook/") and p.body.get("kind") == kind
        }
        return [
            p.body
            for p in receiver.about(change_id)
            if p.path.startswith(path) and p.status == 200 and p.key in ids
        ]

    bodies = await wait_until(arrived, what=f"{kind} at {path}")
    assert len(bodies) == 1, bodies
    return dict(bodies[0])


def kinds(receiver: Receiver, change_id: str) -> set[str]:
    """The notice kinds the generic webhook was told of for one change."""
    return {str(p.body["kind"]) for p in receiver.about(change_id) if p.path.startswith("/hook/")}


def final_line(status: ChangeStatus) -> str:
    return next(e.message for e in reversed(status.timeline) if e.kind == "outcome")


async def test_awaiting_approval_names_who_can_approve_with_links(
    notified: ChangeService, notify_settings: Settings, fleet: Fleet, receiver: Receiver
) -> None:
    change_id = await notified.submit(
        make_request(service="search", parameters={"log_level": "debug"}, assumptions={})
    )
    status = await wait_for_stage(notified, change_id, Stage.AWAITING_APPROVAL)
    assert status.risk is not None and status.risk.tier != "high"
    hook = await one_post(receiver, "/hook/", change_id, "awaiting_approval")
    assert hook["approvers"] == [a for a in ALL_APPROVERS if a != "agent-7"]
    assert hook["change_id"] == change_id and hook["target"] == "fleet:service=search"
    assert hook["links"] == {
        "approval_page": f"{notify_settings.api_url}/ui/changes/{change_id}",
        "temporal_ui": notify_settings.workflow_url(change_id),
    }
    assert hook["title"].startswith(f"{change_id} awaits approval: ")
    assert hook["summary"] == status.summary

    slack = await one_post(receiver, "/slack/", change_id, "awaiting_approval")
    header, summary, facts, actions = slack["blocks"]
    # Slack caps a header at 150 characters: the title, cut with an ellipsis if longer.
    shown_title = header["text"]["text"]
    assert len(shown_title) <= 150 and hook["title"].startswith(shown_title.rstrip("…"))
    summary_lines = [line for line in (status.summary or "").splitlines() if line.strip()]
    assert summary["text"]["text"].splitlines() == summary_lines[:6]
    shown = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in facts["fields"]}
    assert shown["*Who can approve*"] == ", ".join(hook["approvers"])
    assert shown["*Approvals*"] == "0 of 1"
    assert [e["url"] for e in actions["elements"]] == list(hook["links"].values())

    # The flaky channel answered 500 first: retried, then delivered once.
    notice_id = hook["event_id"]
    # (Its first answer is a 500, so it may arrive well after the other channels'.)
    await wait_until(lambda: receiver.delivered(f"/flaky/{HOOK_TOKEN}", event_id=notice_id))
    answers = [p.status for p in receiver.about(change_id) if p.path.startswith("/flaky/")]
    assert answers == [500, 200]
    # Paging is for SEV1 and SEV2 only, and the escalation webhook for escalations only.
    assert not [p for p in receiver.about(change_id) if p.path == "/pd" or "/legacy/" in p.path]

    # The change started its notice as a child workflow whose id is the event id.
    history = await notified._client.get_workflow_handle(change_id).fetch_history()
    children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert children == [notice_id]
    await approve_fully(notified, change_id)
    assert (await notified.wait(change_id)).outcome == Outcome.DONE


async def test_escalation_near_the_deadline(
    notified: ChangeService, fleet: Fleet, receiver: Receiver
) -> None:
    change_id = await notified.submit(
        make_request(
            service="search",
            parameters={"log_level": "info"},
            assumptions={},
            rollout={"approval_timeout_seconds": 4},
        )
    )
    final = await notified.wait(change_id)
    assert final.outcome == Outcome.EXPIRED
    for path in ("/hook/", "/legacy/"):
        body = await one_post(receiver, path, change_id, "escalation")
        assert 0 < body["seconds_left"] <= 4 * (1 - 0.8) + 0.01
        assert body["approvals"] == 0 and body["approvals_required"] == 1
        assert body["approvers"] == [a for a in ALL_APPROVERS if a != "agent-7"]
    # EXPIRED is not an outcome anyone is told of.
    assert kinds(receiver, change_id) == {"awaiting_approval", "escalation"}


async def test_a_canary_rollback_is_told_but_not_paged(
    notified: ChangeService, fleet: Fleet, receiver: Receiver
) -> None:
    change_id = await notified.submit(
        make_request(service="search", parameters={"version": "1.5.0-rc1"}, assumptions={})
    )
    await wait_for_stage(notified, change_id, Stage.AWAITING_APPROVAL)
    await approve_fully(notified, change_id)
    final = await notified.wait(change_id)
    assert final.outcome == Outcome.ROLLED_BACK
    hook = await one_post(receiver, "/hook/", change_id, "rolled_back")
    assert hook["outcome"] == "ROLLED_BACK" and hook["incident_id"] == final.incident_id
    assert hook["severity"] == "SEV3"
    assert hook["title"] == f"{change_id} on fleet:service=search: {final_line(final)}"
    slack = await one_post(receiver, "/slack/", change_id, "rolled_back")
    assert slack["text"] == hook["title"]
    assert not [p for p in receiver.about(change_id) if p.path == "/pd"]


async def test_a_sev2_rollback_pages_once(
    notified: ChangeService, fleet: Fleet, receiver: Receiver
) -> None:
    final = await drive_to_sev2(notified, fleet)
    change_id = final.change_id
    hook = await one_post(receiver, "/hook/", change_id, "rolled_back")
    assert hook["severity"] == "SEV2"
    page = await one_post(receiver, "/pd", change_id, "rolled_back")
    assert page["routing_key"] == ROUTING_KEY
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == hook["event_id"]
    assert page["payload"]["summary"] == hook["title"]
    assert page["payload"]["severity"] == "error"
    assert page["payload"]["source"] == "fleet:service=payments"
    assert page["payload"]["custom_details"]["Incident"] == f"{final.incident_id} (SEV2)"
    assert [link["href"] for link in page["links"]] == list(hook["links"].values())
    # The routing key only ever goes to the paging channel.
    others = [p for p in receiver.about(change_id) if p.path != "/pd"]
    assert others and not [p for p in others if ROUTING_KEY in json.dumps(p.body)]
    # Histories name channels, never their URLs or keys: not the change's, not the notice's.
    client = notified._client
    exported = {}
    for workflow_id in (change_id, hook["event_id"]):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        exported[workflow_id] = history.to_json() + decoded_payloads(json.loads(history.to_json()))
    assert "deliver rolled_back to pager" in exported[hook["event_id"]]
    for text in exported.values():
        assert ROUTING_KEY not in text and HOOK_TOKEN not in text


async def test_a_channel_that_is_down_never_holds_a_change(
    notified: ChangeService,
    client: Client,
    fleet: Fleet,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # A maintenance window stands on inventory: VALIDATE blocks the change.
    change_id = await notified.submit(make_request(service="inventory", assumptions={}))
    final = await notified.wait(change_id)
    assert final.outcome == Outcome.BLOCKED
    hook = await one_post(receiver, "/hook/", change_id, "blocked")
    assert hook["outcome"] == "BLOCKED"
    assert "maintenance" in hook["title"] and hook["title"].endswith("nothing was applied")
    # The change has ended; the notice keeps retrying the channel nobody listens on.
    delivery = client.get_workflow_handle(hook["event_id"])
    await wait_until(lambda: "channel down could not be reached" in caplog.text)
    assert (await delivery.describe()).status == WorkflowExecutionStatus.RUNNING
    await delivery.terminate("test over")
    assert HOOK_TOKEN not in caplog.text and ROUTING_KEY not in caplog.text


class OperatorEvent(BaseModel):
    """The shape the front door's operations report: a kill switch engaged."""

    kind: Literal["kill_switch_engaged", "kill_switch_released", "breaker_tripped"]
    scope: str
    mode: str
    actor: str
    reason: str
    at: datetime


async def test_a_kill_switch_notice_from_the_front_door_is_delivered_once(
    client: Client, notify_settings: Settings, notify_worker: Worker, receiver: Receiver
) -> None:
    secret = "ghp_" + "Zq8Lm2Nx4Pv6Rt8Wy0Ab2Cd4Ef6Gh8Ij0Kl2"
    agent = f"runaway-{uuid.uuid4().hex[:6]}"
    event = OperatorEvent(
        kind="kill_switch_engaged",
        scope=f"agent:{agent}",
        mode="pause",
        actor="ops-admin",
        reason=f"looping on checkout; its token {secret} is revoked",
        at=datetime.now(UTC),
    )
    notice = operation_notice(event)
    assert await publish(client, notice, settings=notify_settings)
    assert not await publish(client, operation_notice(event), settings=notify_settings)
    await client.get_workflow_handle(notice.event_id).result()

    bodies = receiver.delivered(f"/hook/{HOOK_TOKEN}", event_id=notice.event_id)
    assert len(bodies) == 1
    [body] = bodies
    assert body["title"] == f"kill switch agent:{agent} engaged (pause) by ops-admin"
    assert body["summary"] == "looping on checkout; its token [REDACTED] is revoked"
    [slack] = receiver.delivered(f"/slack/{HOOK_TOKEN}", event_id=notice.event_id)
    assert slack["text"] == body["title"]
    assert not receiver.delivered("/pd", event_id=notice.event_id)
    assert secret not in json.dumps([p.body for p in receiver.posts])


@pytest.mark.parametrize("signature", ["", "0" * 64])
async def test_a_raw_client_cannot_make_the_channels_speak(
    client: Client,
    notify_settings: Settings,
    notify_worker: Worker,
    receiver: Receiver,
    signature: str,
) -> None:
    """What the Temporal UI or a raw client can start: a NotifyWorkflow with a notice of its
    own. Unsigned or forged, it fails naming the rule and nothing is posted anywhere."""
    event_id = f"notice-forged-{uuid.uuid4().hex[:8]}"
    forged = Notice(
        event_id=event_id,
        kind=NoticeKind.AWAITING_APPROVAL,
        at=datetime.now(UTC),
        title="chg-000000000000 awaits approval: approve at http://phish.example.com",
        change_id="chg-000000000000",
        signature=signature,
    )
    handle = await client.start_workflow(
        NotifyWorkflow.run, forged, id=event_id, task_queue=notify_settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    rule = "notice.unsigned" if not signature else "notice.forged"
    assert rule in str(failed.value.cause.__cause__ or failed.value.cause)
    assert not [p for p in receiver.posts if p.key == event_id]
    assert "phish" not in json.dumps([p.body for p in receiver.posts])


async def test_without_channels_a_change_starts_no_notice(
    changes: ChangeService, client: Client, fleet: Fleet
) -> None:
    change_id = await changes.submit(make_request(service="search", assumptions={}))
    await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
    await changes.abort(change_id, Control(actor="ops-admin", reason="test over"))
    await changes.wait(change_id)
    history = await client.get_workflow_handle(change_id).fetch_history()
    started = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert started == []


async def test_engaging_and_releasing_a_kill_switch_is_told(
    notified: ChangeService,
    client: Client,
    notify_settings: Settings,
    fleet: Fleet,
    receiver: Receiver,
) -> None:
    operations = Operations(notified, on_event=notify_hook(client, settings=notify_settings))
    agent = f"looper-{uuid.uuid4().hex[:6]}"
    await operations.engage(f"agent:{agent}", "pause", actor="ops-admin", reason="it loops")
    await operations.release(f"agent:{agent}", actor="ops-admin", reason="fixed")

    def told() -> list[dict[str, Any]]:
        return [
            p.body
            for p in receiver.posts
            if p.path.startswith("/hook/") and p.status == 200 and p.body.get("agent") == agent
        ]

    bodies = await wait_until(lambda: len(told()) == 2 and told(), what="both notices")
    by_kind = {b["kind"]: b for b in bodies}
    engaged = by_kind["kill_switch_engaged"]
    assert engaged["title"] == f"kill switch agent:{agent} engaged by ops-admin"
    assert engaged["summary"] == "it loops" and engaged["actor"] == "ops-admin"
    released = by_kind["kill_switch_released"]
    assert released["title"] == f"kill switch agent:{agent} released by ops-admin"
    assert released["event_id"] != engaged["event_id"]

"""What each channel is sent: a generic JSON body, a Slack message, a PagerDuty event.

Pure functions of the notice and its links; the routing key is the only secret any of them
sees, and only the PagerDuty body carries it.
"""

from __future__ import annotations

from typing import Any

from changegate.models import IncidentSeverity, Notice, NoticeKind

SUMMARY_LINES = 6
"""How many of the summary's first lines a chat message shows."""

_PD_SEVERITY = {IncidentSeverity.SEV1: "critical", IncidentSeverity.SEV2: "error"}
_LINK_TEXT = {"approval_page": "Approval page", "temporal_ui": "Temporal UI"}


def first_lines(text: str, count: int = SUMMARY_LINES, *, limit: int = 2900) -> str:
    """The first `count` non-blank lines of `text`, at most `limit` characters."""
    lines = [line for line in text.splitlines() if line.strip()][:count]
    joined = "\n".join(lines)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def facts(notice: Notice) -> dict[str, str]:
    """The notice's key facts as label → text, for chat fields and paging details."""
    found: dict[str, str] = {}
    if notice.change_id:
        found["Change"] = notice.change_id
    if notice.target:
        found["Target"] = notice.target
    if notice.agent:
        found["Agent"] = notice.agent
    if notice.actor:
        found["By"] = notice.actor
    if notice.risk is not None:
        roles = f", role {' or '.join(notice.risk.roles)}" if notice.risk.roles else ""
        found["Risk"] = f"{notice.risk.tier} ({notice.risk.required_approvals} approval(s){roles})"
    if notice.kind in (NoticeKind.AWAITING_APPROVAL, NoticeKind.ESCALATION):
        found["Who can approve"] = ", ".join(notice.approvers) or "any approver but the proposer"
        found["Approvals"] = f"{notice.approvals} of {notice.approvals_required}"
    if notice.seconds_left is not None:
        found["Time left"] = f"{notice.seconds_left:.0f}s"
    if notice.deadline is not None:
        found["Deadline"] = notice.deadline.isoformat(timespec="seconds")
    if notice.outcome is not None:
        found["Outcome"] = notice.outcome.value
    if notice.incident_id:
        severity = f" ({notice.severity.value})" if notice.severity else ""
        found["Incident"] = f"{notice.incident_id}{severity}"
    return found


def webhook_payload(notice: Notice, links: dict[str, str]) -> dict[str, Any]:
    """The generic JSON body: every field of the notice, plus its links."""
    return {**notice.model_dump(mode="json"), "links": links}


def slack_payload(notice: Notice, links: dict[str, str]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: header, summary, facts, link buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(notice.title, 150)}}
    ]
    if notice.summary.strip():
        text = first_lines(notice.summary)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts(notice).items()]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    if links:
        buttons = [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": _LINK_TEXT.get(name, name)},
                "url": url,
            }
            for name, url in links.items()
        ]
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": notice.title, "blocks": blocks}


def pagerduty_payload(notice: Notice, links: dict[str, str], *, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events v2 `trigger`, deduplicated by the notice's event id."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": notice.event_id,
        "payload": {
            "summary": _cut(notice.title, 1024),
            "severity": _pd_severity(notice.severity),
            "source": notice.target or "changegate",
            "timestamp": notice.at.isoformat(),
            "component": notice.target,
            "group": notice.agent,
            "class": notice.kind.value,
            "custom_details": {**facts(notice), "summary": first_lines(notice.summary)},
        },
        "client": "changegate",
        "links": [{"href": url, "text": _LINK_TEXT.get(n, n)} for n, url in links.items()],
    }
    if "temporal_ui" in links:
        body["client_url"] = links["temporal_ui"]
    return body


def _pd_severity(severity: IncidentSeverity | None) -> str:
    return _PD_SEVERITY.get(severity, "warning") if severity is not None else "warning"


def _cut(text: str, limit: int) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"

"""`changegate submit --dry-run`: what a request would meet, through the API, starting nothing.

Exit codes: 0 when the change would start; 5 when admission would refuse it; 1 when it would
be admitted but not start (VALIDATE would block it, or the target could not be observed).
"""

from __future__ import annotations

from typing import Any

from changegate.cli.context import EXIT_OUTCOME, EXIT_REFUSED, Context, refusal_message
from changegate.models import ChangeRequest

__all__ = ["dry_run"]


async def dry_run(ctx: Context, request: ChangeRequest) -> None:
    """Ask the API for a dry run of `request`, print the report, exit by its verdict."""
    async with ctx.api() as changes:
        report: dict[str, Any] = await changes.call(
            "POST", "/changes", params={"dry_run": "true"}, json=request.model_dump(mode="json")
        )
    ctx.emit(report, _text(report))
    admission = report["admission"]
    if not admission["admitted"]:
        raise SystemExit(EXIT_REFUSED)
    if not report["would_start"]:
        raise SystemExit(EXIT_OUTCOME)


def _text(report: dict[str, Any]) -> str:
    admission = report["admission"]
    lines = [f"dry run: {report['verdict']}; nothing was started"]
    if admission["admitted"]:
        lines.append("admission: admitted")
    else:
        refusal = refusal_message(admission["rule"], admission["reason"], admission["would_pass"])
        lines.append("admission: " + refusal)
    risk = report.get("risk")
    if risk is not None:
        lines.append(f"risk: {risk['tier']} ({risk['required_approvals']} approval(s) needed)")
        lines += [f"  {reason}" for reason in risk["reasons"]]
    if report.get("observation_error"):
        lines.append(f"validate: {report['observation_error']}")
    elif report["findings"]:
        lines.append(f"findings ({len(report['findings'])}):")
        lines += [f"  [{f['severity']}] {f['code']}: {f['message']}" for f in report["findings"]]
    else:
        lines.append("findings: none")
    return "\n".join(lines)

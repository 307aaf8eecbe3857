"""The workflow's first step: only a change the front door admitted may go on."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from changegate.models import ChangeInput, Finding, HaltCause, Outcome, TicketCheck
    from changegate.workflows.controls import Halt
    from changegate.workflows.ledger import Ledger
    from changegate.workflows.steps import Steps


async def check_admission(data: ChangeInput, ledger: Ledger, steps: Steps) -> None:
    """Verify the signed ticket the workflow was started with; `Halt` (BLOCKED) without one."""
    verdict = await steps.verify_admission(
        TicketCheck(
            change_id=data.change_id,
            request=data.request,
            ticket=data.ticket,
            started_at=workflow.info().start_time,
        )
    )
    if not verdict.valid:
        message = f"not admitted ({verdict.rule}): {verdict.reason}"
        ledger.status.findings.append(
            Finding(code="not-admitted", severity="block", message=message)
        )
        raise Halt(Outcome.BLOCKED, HaltCause.BLOCKED, message)
    ledger.event("admitted", verdict.reason)

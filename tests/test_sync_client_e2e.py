"""The blocking Python client, from a plain thread, against the real stack."""

from __future__ import annotations

import asyncio
import time

import pytest

from changegate.admission import AdmissionRefused
from changegate.client import SyncChangeClient
from changegate.models import Decision, Outcome, Stage
from changegate.service import ChangeService
from changegate.settings import Settings
from tests.support import Fleet, make_request


def run_blocking(settings: Settings) -> tuple[Outcome | None, str]:
    """A script that knows nothing of asyncio: submit, wait for approval, approve, wait."""
    with SyncChangeClient(settings) as client:
        change_id = client.submit(make_request(service="search", assumptions={}))
        while client.status(change_id).stage != Stage.AWAITING_APPROVAL:
            time.sleep(0.2)
        judgement = client.approve(change_id, Decision(actor="alice", reason="sync"))
        assert judgement.counted
        final = client.wait(change_id)
        with pytest.raises(AdmissionRefused) as refused:
            client.submit(make_request(service="ledger"))  # frozen by the test policy
        return final.outcome, refused.value.rule


async def test_sync_client_runs_a_change_end_to_end(
    changes: ChangeService, settings: Settings, fleet: Fleet
) -> None:
    outcome, rule = await asyncio.to_thread(run_blocking, settings)
    assert outcome == Outcome.DONE
    assert rule == "freeze_window"
    assert all(c["pool_size"] == 24 for c in fleet.configs("search").values())

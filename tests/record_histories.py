"""Record the histories that tests/test_replay.py replays:
`python -m tests.record_histories LABEL` writes `histories/<scenario>-<LABEL>.json`.

Run it after a deliberate, versioned workflow change (behind `workflow.patched()`) to add
histories of the new code beside the old ones; never to paper over a replay failure of the
old ones.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from changegate.models import Decision, Stage
from changegate.runtime import running_stack
from changegate.service import ChangeService
from changegate.settings import Settings
from tests.support import free_port, make_request, wait_for_stage

HERE = Path(__file__).parent / "histories"


async def main(label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            temporal_address=f"127.0.0.1:{free_port()}",
            ui_url=f"http://127.0.0.1:{free_port()}",
            fleet_url=f"http://127.0.0.1:{free_port()}",
            data_dir=Path(tmp),
        )
        async with running_stack(settings, embedded_temporal=True, with_fleet=True) as stack:
            changes = ChangeService(stack.client, settings)
            scenarios = {
                "done": make_request(parameters={"pool_size": 24}),
                "rolled_back": make_request(
                    service="payments",
                    parameters={"version": "0.bad"},
                    assumptions={"unit_count": 3},
                ),
                "rejected": make_request(service="search", assumptions={"unit_count": 3}),
            }
            for name, request in scenarios.items():
                change_id = await changes.submit(request, change_id=f"history-{name}")
                await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
                decide = changes.reject if name == "rejected" else changes.approve
                await decide(change_id, Decision(actor="recorder", reason=name))
                status = await changes.wait(change_id)
                history = await stack.client.get_workflow_handle(change_id).fetch_history()
                (HERE / f"{name}-{label}.json").write_text(history.to_json())
                print(f"{name}: {status.outcome} ({len(history.events)} events)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.record_histories LABEL  (say, the patch id)")
    asyncio.run(main(sys.argv[1]))

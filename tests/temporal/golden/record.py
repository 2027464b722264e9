"""Record the golden workflow histories replayed by tests/temporal/test_golden.py.

Run it (``.venv/bin/python tests/temporal/golden/record.py``) only when a change to the
spine workflow is *meant* to change the commands it issues; a history recorded before
such a change no longer replays, which is what the golden test is for (a workflow
change that would break the runs in flight when it is deployed). The activities are
the scripted stand-ins of test_workflow.py; the server is a dev server of its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from temporalio.worker import Worker  # noqa: E402
from test_workflow import Script, outcome, step  # noqa: E402

from lifeos.temporal.client import connect, send_decision, submit, wait_for_stop  # noqa: E402
from lifeos.temporal.contract import EngineRef  # noqa: E402
from lifeos.temporal.devserver import DevServer  # noqa: E402
from lifeos.temporal.workflow import SpineWorkflow  # noqa: E402


async def pause_refuse_approve(server: DevServer) -> dict[str, Any]:
    """A run that steps, pauses for approval, has a decision refused, then one taken,
    and lands: every branch of the workflow."""
    paused = outcome("PAUSED", message="waiting for approval (before_steward)")
    script = Script(
        [
            step(None, 1),
            step(paused, 3, approval="before_steward"),
            step(None, 0),
            step(outcome("LANDED")),
        ],
        decisions=[
            {"refused": {"reason": "POLICY_HASH_MISMATCH", "message": "the policy changed"}},
            {"refused": None},
        ],
    )
    ref = EngineRef(server.address, "golden")
    client = await connect(server.address)
    async with Worker(
        client, task_queue=ref.task_queue, workflows=[SpineWorkflow], activities=script.activities
    ):
        handle = await submit(client, ref, str(uuid.UUID(int=1)), recovering=True)
        await wait_for_stop(handle, ref.address)
        await send_decision(handle, ref.address, "before_build", True, "stale")
        await send_decision(handle, ref.address, "before_steward", True, "first")
        try:
            await wait_for_stop(handle, ref.address, after_decisions=1)
        except Exception:
            pass
        await send_decision(handle, ref.address, "before_steward", True, "second")
        await wait_for_stop(handle, ref.address, after_decisions=2)
        history = await handle.fetch_history()
    return history.to_json_dict()


def main() -> None:
    with DevServer() as server:
        history = asyncio.run(pause_refuse_approve(server))
    target = HERE / "spine_pause_refuse_approve.json"
    target.write_text(json.dumps(history, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()

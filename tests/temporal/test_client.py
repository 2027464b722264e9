"""The CLI's client helpers that need no server: the address check, the outcome form,
and the exit that skips the interpreter's teardown (only in the console script)."""

from __future__ import annotations

import pytest

from lifeos.errors import InputError
from lifeos.spine import SpineOutcome
from lifeos.spine.model import SpineState
from lifeos.temporal import client
from lifeos.temporal.contract import EngineRef, TemporalUnavailable
from lifeos.temporal.devserver import free_port


@pytest.mark.parametrize("address", ["nonsense", ":7233", "host:", "host:port"])
def test_an_address_that_is_not_host_port_is_bad_input(address: str) -> None:
    with pytest.raises(InputError, match="not HOST:PORT"):
        client.probe(address)


def test_a_closed_port_is_unreachable_with_the_os_reason() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(TemporalUnavailable) as caught:
        client.probe(address)
    assert caught.value.one_line() == (
        f"cannot reach Temporal at {address}: connection refused [ENGINE_UNAVAILABLE]"
    )
    assert caught.value.exit_code == 1


def test_an_outcome_survives_its_dict_form() -> None:
    outcome = SpineOutcome(
        run_id="r",
        task_id="T-1",
        state=SpineState.BLOCKED,
        reasons=("DENYLISTED_PATH", "OUTSIDE_ALLOWLIST"),
        message="the gate blocked the build",
        phase="design",
        commit="c" * 40,
        branch="lifeos/T-1-r",
        worktree="/tmp/wt",
        agent_calls=4,
        replayed_calls=1,
    )
    assert client.outcome_from_dict(outcome.to_dict()) == outcome


def test_the_engine_record_names_a_temporal_run_only() -> None:
    ref = EngineRef("127.0.0.1:7233", "q")
    assert EngineRef.of_run({"engine": ref.to_dict()}) == ref
    assert EngineRef.of_run({}) is None
    assert EngineRef.of_run({"engine": {"kind": "local"}}) is None


def test_the_teardown_free_exit_is_only_for_the_console_script() -> None:
    client.exit_without_teardown(3)  # pytest is not `lifeos`: nothing is registered
    assert client._EXIT_STATUS == []

"""Drive the installed `lifeos` command on the PostgreSQL store.

The store is chosen with ``LIFEOS_STORE_URL`` or lifeos.yaml's ``store:``. An unreachable
server is one line naming ``STORE_UNAVAILABLE``, exit 2, no traceback; a reachable one
keeps the runs and the ledger, which `lifeos ledger verify` checks as it does on SQLite.
The server is the test one (``tests/store/pgserver.py``): skipped, with the reason, where
there are no PostgreSQL binaries and no ``LIFEOS_TEST_PG_URL``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.store.pgserver import PostgresServer

LIFEOS = str(Path(sys.executable).parent / "lifeos")


def lifeos(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LIFEOS_", "PG"))}
    return subprocess.run(
        [LIFEOS, *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = lifeos(cwd, *args, env=env)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, reason: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lifeos: error:") and err.endswith(f"[{reason}]"), err
    assert "Traceback" not in proc.stderr
    return err


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def pg_url(pg_server: PostgresServer, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of this test's own."""
    try:
        yield pg_server.database_url(tmp_path)
    finally:
        pg_server.drop_database(tmp_path)


# -- an unreachable store ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["ledger", "verify"], ["runs", "list"], ["spine", "list"], ["init"]]
)
def test_an_unreachable_store_is_one_line_and_exit_2(git_repo: Path, command: list[str]) -> None:
    port = closed_port()
    url = f"postgresql://someone:s3cret@127.0.0.1:{port}/lifeos"
    proc = lifeos(git_repo, *command, env={"LIFEOS_STORE_URL": url})
    err = assert_one_line_error(proc, 2, "STORE_UNAVAILABLE")
    assert f"postgresql://127.0.0.1:{port}/lifeos" in err
    assert "refused" in err.lower()
    assert "s3cret" not in proc.stderr + proc.stdout and "someone" not in err
    assert not (git_repo / ".lifeos" / "lifeos.db").exists()
    assert not (git_repo / "lifeos.yaml").exists()  # init refused before writing


def test_another_url_scheme_is_refused(git_repo: Path) -> None:
    proc = lifeos(git_repo, "runs", "list", env={"LIFEOS_STORE_URL": "mysql://db/lifeos"})
    err = assert_one_line_error(proc, 2, "STORE_UNAVAILABLE")
    assert "mysql:// is not supported" in err


# -- a reachable one ---------------------------------------------------------------------------


def _run_missions(repo: Path, env: dict[str, str], count: int) -> list[str]:
    ids = []
    for i in range(count):
        proc = ok(
            repo, "mission", "run", "echo", "--params", json.dumps({"n": i}), "--json", env=env
        )
        ids.append(proc.stderr.split("lifeos: run ", 1)[1].split()[0])
    return ids


def test_runs_and_the_ledger_live_in_postgresql(
    git_repo: Path, pg_url: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    env = {"LIFEOS_STORE_URL": pg_url}
    ok(git_repo, "init", env=env)
    ids = _run_missions(git_repo, env, 2)
    ok(git_repo, "ledger", "checkpoint", env=env)

    runs = json.loads(ok(git_repo, "runs", "list", "--json", env=env).stdout)
    assert sorted(r["run_id"] for r in runs) == sorted(ids)
    assert all(r["status"] == "completed" for r in runs)
    report = json.loads(ok(git_repo, "ledger", "verify", "--json", env=env).stdout)
    assert report["ok"] is True and report["checkpoints"] == 1
    size = report["size"]
    assert size >= 2
    dbname = pg_server.database_name(tmp_path)
    assert pg_server.execute(dbname, "SELECT COUNT(*) FROM ledger") == [(size,)]
    assert not (git_repo / ".lifeos" / "lifeos.db").exists()

    # An entry altered in the database is caught.
    altered = pg_server.execute(
        dbname, "UPDATE ledger SET entry = entry || '\\x20'::bytea WHERE seq = 1 RETURNING seq"
    )
    assert altered == [(1,)]
    proc = lifeos(git_repo, "ledger", "verify", env=env)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "[LEDGER_TAMPERED]" in proc.stderr


def test_lifeos_yaml_names_the_server_and_the_environment_the_login(
    git_repo: Path, pg_url: str
) -> None:
    env = {"LIFEOS_STORE_URL": pg_url}
    ok(git_repo, "init", env=env)
    [run_id] = _run_missions(git_repo, env, 1)

    parts = urlsplit(pg_url)
    assert parts.username and parts.hostname and parts.port
    bare = f"postgresql://{parts.hostname}:{parts.port}{parts.path}"
    config = git_repo / "lifeos.yaml"
    config.write_text(config.read_text(encoding="utf-8") + f"store: {bare}\n", encoding="utf-8")
    login = {"PGUSER": parts.username}
    if parts.password:
        login["PGPASSWORD"] = parts.password
    runs = json.loads(ok(git_repo, "runs", "list", "--json", env=login).stdout)
    assert [r["run_id"] for r in runs] == [run_id]

    with_login = f"postgresql://{parts.username}:pw@{parts.hostname}:{parts.port}{parts.path}"
    config.write_text(
        config.read_text(encoding="utf-8").replace(f"store: {bare}", f"store: {with_login}"),
        encoding="utf-8",
    )
    proc = lifeos(git_repo, "runs", "list", env=login)
    err = assert_one_line_error(proc, 2, "CONFIG_INVALID")
    assert "LIFEOS_STORE_URL" in err

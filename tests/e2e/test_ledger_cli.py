"""Drive `lifeos init`, `lifeos runs` and `lifeos ledger` in temporary git repositories."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import git
from tests.e2e.cli import lifeos

from lifeos.canonical import canonical_json
from lifeos.ledger.merkle import ProofError, leaf_hash, verify_inclusion
from lifeos.ledger.note import Signer, Verifier, open_note, parse_checkpoint

GENESIS = "0" * 64


def ok(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = lifeos(cwd, *args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, reason: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lifeos: error:") and err.endswith(f"[{reason}]"), err
    assert "Traceback" not in proc.stderr
    return err


def db_of(repo: Path) -> Path:
    return repo / ".lifeos" / "lifeos.db"


def root_commit(repo: Path) -> str:
    return git(repo, "rev-list", "--max-parents=0", "HEAD").strip()


def initialised(repo: Path, runs: int = 1) -> list[str]:
    """`lifeos init`, then ``runs`` echo missions; return their run ids."""
    ok(repo, "init")
    ids = []
    for i in range(runs):
        proc = ok(repo, "mission", "run", "echo", "--params", json.dumps({"n": i}), "--json")
        ids.append(proc.stderr.split("lifeos: run ", 1)[1].split()[0])
    return ids


def sql(repo: Path, statement: str, args: tuple[Any, ...] = ()) -> list[Any]:
    db = sqlite3.connect(str(db_of(repo)))
    try:
        rows = db.execute(statement, args).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def verify_json(repo: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = lifeos(repo, "ledger", "verify", "--json", *extra)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


# -- init: the key pair ---------------------------------------------------------------------


def test_init_creates_the_key_pair(git_repo: Path) -> None:
    proc = ok(git_repo, "init")
    assert "mode 0600" in proc.stdout and "lifeos.pub" in proc.stdout
    private = git_repo / ".lifeos" / "signing.key"
    public = git_repo / "lifeos.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.is_file() and not public.stat().st_mode & stat.S_IWOTH
    signer = Signer.from_text(private.read_text().strip())
    verifier = Verifier.from_text(public.read_text().strip())
    assert verifier.key_text == signer.verifier().key_text
    assert signer.name == f"lifeos/{root_commit(git_repo)}"
    # .lifeos/ ignores itself; lifeos.pub is there to be committed.
    status = git(git_repo, "status", "--porcelain", "--untracked-files=all")
    assert ".lifeos" not in status and "lifeos.pub" in status
    # Running it again keeps the key.
    again = ok(git_repo, "init", "--force")
    assert "already present" in again.stdout
    assert Signer.from_text(private.read_text().strip()).verifier().key_text == verifier.key_text


def test_init_writes_lifeos_yaml_with_the_umask_mode(git_repo: Path) -> None:
    ok(git_repo, "init")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((git_repo / "lifeos.yaml").stat().st_mode) == 0o666 & ~umask


# -- runs are recorded ------------------------------------------------------------------------


def test_mission_run_is_recorded(git_repo: Path) -> None:
    first, second = initialised(git_repo, runs=2)
    runs = json.loads(ok(git_repo, "runs", "list", "--json").stdout)
    assert {r["run_id"] for r in runs} == {first, second}
    assert all(r["kind"] == "mission" and r["name"] == "echo" for r in runs)
    assert all(r["status"] == "completed" and r["completed_at"] for r in runs)
    text = ok(git_repo, "runs", "list").stdout
    assert first in text and second in text

    shown = json.loads(ok(git_repo, "runs", "show", first, "--json").stdout)
    assert shown["run"]["run_id"] == first
    assert [(c["step_id"], c["status"]) for c in shown["checkpoints"]] == [("echo-execute", "ok")]
    assert [e["type"] for e in shown["ledger"]] == ["run.started", "step", "run.finished"]
    assert all(e["run_id"] == first for e in shown["ledger"])
    step = shown["ledger"][1]["payload"]
    assert step["checkpoint_id"] == shown["checkpoints"][0]["checkpoint_id"]
    assert step["state_hash"] == shown["checkpoints"][0]["state_hash"]
    assert shown["journal"] == [[first, "echo-execute", 0, 0]]
    assert "echo-execute: ok" in ok(git_repo, "runs", "show", first).stdout

    by_run = json.loads(ok(git_repo, "ledger", "show", "--run", first, "--json").stdout)
    assert by_run == shown["ledger"]
    everything = json.loads(ok(git_repo, "ledger", "show", "--json").stdout)
    assert [e["seq"] for e in everything] == list(range(6))
    assert [e for e in everything if e["run_id"] == first] == by_run
    for e in everything:
        entry = {k: v for k, v in e.items() if k != "leaf_hash"}
        assert leaf_hash(canonical_json(entry)).hex() == e["leaf_hash"]
    assert everything[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["leaf_hash"] for a, b in pairwise(everything))
    assert "run.started" in ok(git_repo, "ledger", "show", "--run", second).stdout


def test_runs_show_unknown_run_is_bad_input(git_repo: Path) -> None:
    initialised(git_repo)
    assert "nope" in assert_one_line_error(
        lifeos(git_repo, "runs", "show", "nope"), 2, "INVALID_INPUT"
    )


# -- checkpoint and verify ----------------------------------------------------------------------


def test_checkpoint_prints_a_signed_note_and_verify_passes(git_repo: Path) -> None:
    initialised(git_repo)
    before = ok(git_repo, "ledger", "verify")
    assert "3 entries" in before.stdout and "0 signed checkpoint" in before.stdout
    note = ok(git_repo, "ledger", "checkpoint").stdout
    lines = note.splitlines()
    assert lines[0] == f"lifeos/{root_commit(git_repo)}"
    assert lines[1] == "3"
    verifier = Verifier.from_text((git_repo / "lifeos.pub").read_text().strip())
    checkpoint = parse_checkpoint(open_note(note, verifier).text)
    assert checkpoint.size == 3

    proc = ok(git_repo, "ledger", "verify")
    assert proc.stdout.startswith("ledger OK: 3 entries") and "1 signed checkpoint" in proc.stdout
    code, report, _ = verify_json(git_repo)
    assert code == 0
    assert report["ok"] is True and report["size"] == 3 and report["checkpoints"] == 1
    assert report["latest_checkpoint_size"] == 3 and report["reason_code"] is None
    assert report["root"] == checkpoint.root.hex()
    assert report["root"] == base64.b64decode(lines[2]).hex()


def test_tampered_db_fails_verify_naming_the_seq(git_repo: Path) -> None:
    initialised(git_repo, runs=2)
    ok(git_repo, "ledger", "checkpoint")
    original = bytes(sql(git_repo, "SELECT entry FROM ledger WHERE seq = 4")[0][0])
    forged = original.replace(b'"status":"ok"', b'"status":"OK"')
    assert forged != original
    sql(git_repo, "UPDATE ledger SET entry = ? WHERE seq = 4", (forged,))
    err = assert_one_line_error(lifeos(git_repo, "ledger", "verify"), 3, "LEDGER_TAMPERED")
    assert "seq 4" in err
    code, report, stderr = verify_json(git_repo)
    assert code == 3 and "LEDGER_TAMPERED" in stderr
    assert report["ok"] is False and report["first_bad_seq"] == 4
    assert report["reason_code"] == "LEDGER_TAMPERED"


def test_deleted_tail_below_the_checkpoint_is_truncation(git_repo: Path) -> None:
    initialised(git_repo, runs=2)
    ok(git_repo, "ledger", "checkpoint")
    sql(git_repo, "DELETE FROM ledger WHERE seq >= 5")
    err = assert_one_line_error(lifeos(git_repo, "ledger", "verify"), 3, "LEDGER_TRUNCATED")
    assert "seq 5" in err


def test_verify_with_another_key(git_repo: Path, tmp_path: Path) -> None:
    initialised(git_repo)
    other = tmp_path / "other.pub"
    name = f"lifeos/{root_commit(git_repo)}"
    other.write_text(Signer.generate(name).verifier().key_text + "\n")
    # Nothing signed yet: no signature to check.
    ok(git_repo, "ledger", "verify", "--key", str(other))
    ok(git_repo, "ledger", "checkpoint")
    proc = lifeos(git_repo, "ledger", "verify", "--key", str(other))
    assert_one_line_error(proc, 3, "SIGNATURE_INVALID")
    ok(git_repo, "ledger", "verify", "--key", str(git_repo / "lifeos.pub"))
    missing = lifeos(git_repo, "ledger", "verify", "--key", str(tmp_path / "missing.pub"))
    assert_one_line_error(missing, 2, "KEY_MISSING")
    (tmp_path / "junk.pub").write_text("not a key\n")
    junk = lifeos(git_repo, "ledger", "verify", "--key", str(tmp_path / "junk.pub"))
    assert_one_line_error(junk, 2, "KEY_MISSING")


def _rewrite_chain(repo: Path, seq: int) -> None:
    """Forge entry ``seq`` and recompute every link and leaf hash; drop the checkpoints."""
    prev = GENESIS
    for s, blob in sql(repo, "SELECT seq, entry FROM ledger ORDER BY seq"):
        entry = json.loads(bytes(blob))
        if s == seq:
            entry["payload"]["forged"] = True
        entry["prev_hash"] = prev
        data = canonical_json(entry)
        prev = hashlib.sha256(b"\x00" + data).hexdigest()
        sql(repo, "UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = ?", (data, prev, s))
    sql(repo, "DELETE FROM ledger_checkpoints")


def test_resigning_with_a_fresh_key_is_detected(git_repo: Path, tmp_path: Path) -> None:
    initialised(git_repo, runs=2)
    git(git_repo, "add", "lifeos.pub", "lifeos.yaml")
    git(git_repo, "commit", "-q", "-m", "lifeos key")
    trusted = tmp_path / "trusted.pub"
    trusted.write_bytes((git_repo / "lifeos.pub").read_bytes())
    ok(git_repo, "ledger", "checkpoint")

    # The forger rewrites history, throws the key pair away and makes a new one.
    _rewrite_chain(git_repo, 1)
    (git_repo / ".lifeos" / "signing.key").unlink()
    (git_repo / "lifeos.pub").unlink()
    ok(git_repo, "init", "--force")
    ok(git_repo, "ledger", "checkpoint")
    # Against the key now lying in the checkout, the forgery is self-consistent ...
    ok(git_repo, "ledger", "verify")
    # ... but not against the committed key, and the checkout shows the key changed.
    proc = lifeos(git_repo, "ledger", "verify", "--key", str(trusted))
    assert_one_line_error(proc, 3, "SIGNATURE_INVALID")
    git(git_repo, "stash", "-q")  # back to the committed lifeos.pub
    assert_one_line_error(lifeos(git_repo, "ledger", "verify"), 3, "SIGNATURE_INVALID")


def test_fresh_clone_has_no_private_key(git_repo: Path, tmp_path: Path) -> None:
    initialised(git_repo)
    git(git_repo, "add", "lifeos.pub", "lifeos.yaml")
    git(git_repo, "commit", "-q", "-m", "lifeos key")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    assert (clone / "lifeos.pub").is_file() and not (clone / ".lifeos").exists()
    err = assert_one_line_error(lifeos(clone, "ledger", "checkpoint"), 2, "KEY_MISSING")
    assert "signing.key" in err
    assert_one_line_error(lifeos(clone, "init", "--force"), 2, "KEY_MISSING")
    assert not (clone / ".lifeos" / "signing.key").exists()
    ok(clone, "ledger", "verify")  # verifying needs only the public key


# -- proofs --------------------------------------------------------------------------------------


def test_prove_inclusion_verifies(git_repo: Path) -> None:
    initialised(git_repo, runs=2)
    _, report, _ = verify_json(git_repo)
    for seq in range(report["size"]):
        proof = json.loads(ok(git_repo, "ledger", "prove", str(seq)).stdout)
        assert proof["seq"] == seq and proof["tree_size"] == 6
        assert proof["root"] == report["root"]
        leaf = bytes.fromhex(proof["leaf_hash"])
        assert leaf == leaf_hash(canonical_json(proof["entry"]))
        path = [bytes.fromhex(p) for p in proof["proof"]]
        root = bytes.fromhex(proof["root"])
        verify_inclusion(leaf, seq, proof["tree_size"], path, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, (seq + 1) % 6, proof["tree_size"], path, root)


def test_prove_out_of_range_is_bad_input(git_repo: Path) -> None:
    initialised(git_repo)
    err = assert_one_line_error(lifeos(git_repo, "ledger", "prove", "999"), 2, "INVALID_INPUT")
    assert "999" in err
    assert_one_line_error(lifeos(git_repo, "ledger", "prove", "3"), 2, "INVALID_INPUT")
    assert_one_line_error(lifeos(git_repo, "ledger", "prove", "-1"), 2, "INVALID_INPUT")


# -- export ---------------------------------------------------------------------------------------


def test_export_verifies_and_an_edited_export_does_not(git_repo: Path) -> None:
    initialised(git_repo, runs=2)
    ok(git_repo, "ledger", "checkpoint")
    export = git_repo / "F.jsonl"
    assert "exported 6 entries" in ok(git_repo, "ledger", "export", "F.jsonl").stdout
    lines = export.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 7
    assert lines[:-1] == [bytes(r[0]) for r in sql(git_repo, "SELECT entry FROM ledger")]
    assert (git_repo / "F.jsonl.notes").read_text().startswith(f"lifeos/{root_commit(git_repo)}")
    proc = ok(git_repo, "ledger", "verify", "--file", "F.jsonl")
    assert "6 entries" in proc.stdout and "1 signed checkpoint" in proc.stdout

    data = bytearray(export.read_bytes())
    at = data.index(b'"name":"echo"') + len(b'"name":"')
    data[at] = ord("E")
    export.write_bytes(bytes(data))
    assert_one_line_error(
        lifeos(git_repo, "ledger", "verify", "--file", "F.jsonl"), 3, "LEDGER_TAMPERED"
    )
    missing = lifeos(git_repo, "ledger", "verify", "--file", "nope.jsonl")
    assert_one_line_error(missing, 2, "INVALID_INPUT")


# -- a store that is not ours --------------------------------------------------------------------

COMMANDS = [
    ("runs", "list"),
    ("runs", "list", "--json"),
    ("runs", "show", "x"),
    ("ledger", "verify"),
    ("ledger", "verify", "--json"),
    ("ledger", "show"),
    ("ledger", "show", "--run", "x", "--json"),
    ("ledger", "checkpoint"),
    ("ledger", "prove", "0"),
    ("ledger", "export", "G.jsonl"),
    ("mission", "run", "echo"),
]


@pytest.mark.parametrize("kind", ["foreign-sqlite", "text"])
def test_foreign_db_file_is_refused_and_left_alone(git_repo: Path, kind: str) -> None:
    ok(git_repo, "init")
    db = db_of(git_repo)
    db.unlink()
    if kind == "text":
        db.write_bytes(b"my shopping list\n")
    else:
        other = sqlite3.connect(str(db))
        try:
            other.execute("CREATE TABLE notes (body TEXT)")
            other.execute("INSERT INTO notes VALUES ('mine')")
            other.commit()
        finally:
            other.close()
    before = db.read_bytes()
    for command in COMMANDS:
        proc = lifeos(git_repo, *command)
        assert_one_line_error(proc, 2, "STORE_UNAVAILABLE")
        assert "lifeos.db" in proc.stderr
        assert db.read_bytes() == before, command
    assert sorted(p.name for p in db.parent.iterdir()) == [".gitignore", "lifeos.db", "signing.key"]
    assert not (git_repo / "G.jsonl").exists()


def test_damaged_ledger_pages_fail_cleanly(git_repo: Path) -> None:
    initialised(git_repo)
    db = db_of(git_repo)
    data = db.read_bytes()
    page = data.index(b'"seq":1,') // 4096
    db.write_bytes(data[: page * 4096] + b"\xa5" * 4096 + data[(page + 1) * 4096 :])
    proc = lifeos(git_repo, "ledger", "verify")
    assert proc.returncode in (2, 3), proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

"""Run worktrees, exact commits and the external-change guard, on real git repositories."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from tests.conftest import git

from lifeos.clock import FixedClock
from lifeos.errors import InputError, LifeOSError, ReasonCode
from lifeos.worktree import (
    HardenedGit,
    OutsideSnapshot,
    Worktree,
    WorktreeError,
    checkout_commit,
    commit_tree,
    create_worktree,
    list_run_worktrees,
    remove_worktree,
    snapshot_outside,
)

RUN = "0f3a9c2e-5b1d-4c8e-9a7f-2d6e8b1c4a90"
RUN2 = "7c2b1e44-9d0a-4f3b-8e21-5a6c7d8e9f01"
TASK = "T-12"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def hgit(repo: Path, start: dt.datetime = START) -> HardenedGit:
    return HardenedGit(repo, FixedClock(start))


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def stage_tree(g: HardenedGit, wt: Worktree) -> str:
    """The tree of everything in the worktree (staged in the worktree's own index)."""
    g.run("add", "-A", cwd=wt.path)
    return g.run("write-tree", cwd=wt.path).strip()


def expect(code: ReasonCode, fn: Callable[[], object]) -> WorktreeError:
    with pytest.raises(WorktreeError) as info:
        fn()
    assert info.value.reason is code, info.value.one_line()
    assert "\n" not in info.value.message
    return info.value


@pytest.fixture
def repo(git_repo: Path) -> Path:
    (git_repo / "src").mkdir()
    (git_repo / "src" / "app.py").write_text("print('hi')\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-q", "-m", "app")
    return git_repo


# ------------------------------------------------------------------------ HardenedGit


class TestHardenedGit:
    def test_failure_is_one_line_git_failed(self, repo: Path) -> None:
        err = expect(ReasonCode.GIT_FAILED, lambda: hgit(repo).run("cat-file", "-p", "nope"))
        assert isinstance(err, InputError) and isinstance(err, LifeOSError)
        assert err.message.startswith("git cat-file failed")

    def test_bad_identity(self, repo: Path) -> None:
        expect(
            ReasonCode.INVALID_INPUT,
            lambda: HardenedGit(repo, FixedClock(), ("x <y>", "a@b")),
        )

    def test_environment_is_clean_and_dated_from_clock(
        self, repo: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GIT_DIR", "/nonexistent")
        monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.hookspath'='/tmp'")
        g = HardenedGit(repo, FixedClock(START), ("Ada", "ada@example.org"))
        env = g.env(dated=True)
        assert "GIT_DIR" not in env and "GIT_CONFIG_PARAMETERS" not in env
        assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert env["GIT_TERMINAL_PROMPT"] == "0" and env["LC_ALL"] == "C"
        assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "Ada"
        assert env["GIT_AUTHOR_DATE"] == "2026-01-01T00:00:00+00:00"
        assert "GIT_AUTHOR_DATE" not in g.env()
        cmd = g.command("status")
        for setting in (
            "core.hooksPath=/dev/null",
            "core.fsmonitor=false",
            "commit.gpgsign=false",
            "tag.gpgsign=false",
        ):
            assert setting in cmd
        # Works despite GIT_DIR pointing nowhere in the caller's environment.
        assert g.run("rev-parse", "--show-toplevel").strip() == str(repo)


# -------------------------------------------------------------------------- worktrees


class TestCreate:
    def test_layout(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        assert wt == Worktree(
            repo / ".lifeos" / "worktrees" / RUN, f"lifeos/T-12-{RUN[:8]}", base, RUN
        )
        assert (wt.path / "src" / "app.py").read_text() == "print('hi')\n"
        assert git(wt.path, "symbolic-ref", "HEAD").strip() == f"refs/heads/{wt.branch}"
        assert git(wt.path, "rev-parse", "HEAD").strip() == base
        assert (repo / ".lifeos" / ".gitignore").read_text() == "*\n"
        # Nothing of LifeOS shows in the user's status.
        assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
        assert list_run_worktrees(g) == [wt]

    def test_baseline_short_or_symbolic_is_resolved(self, repo: Path) -> None:
        base = head(repo)
        wt = create_worktree(hgit(repo), repo / ".lifeos", RUN, TASK, "HEAD~1")
        assert wt.baseline == git(repo, "rev-parse", "HEAD~1").strip() != base

    def test_path_through_a_symlink(self, repo: Path, tmp_path: Path) -> None:
        link = tmp_path / "link"
        link.symlink_to(repo)
        g = hgit(link)
        wt = create_worktree(g, link / ".lifeos", RUN, TASK, head(repo))
        assert wt.path == repo / ".lifeos" / "worktrees" / RUN
        assert list_run_worktrees(g) == [wt]
        remove_worktree(g, wt, delete_branch=True)
        assert list_run_worktrees(g) == []

    def test_existing_gitignore_kept(self, repo: Path) -> None:
        (repo / ".lifeos").mkdir()
        (repo / ".lifeos" / ".gitignore").write_text("*\n!keep\n")
        create_worktree(hgit(repo), repo / ".lifeos", RUN, TASK, head(repo))
        assert (repo / ".lifeos" / ".gitignore").read_text() == "*\n!keep\n"

    @pytest.mark.parametrize("baseline", ["0" * 40, "nonexistent", "-h", "", "HEAD~9"])
    def test_baseline_missing(self, repo: Path, baseline: str) -> None:
        g = hgit(repo)
        expect(
            ReasonCode.BASELINE_MISSING,
            lambda: create_worktree(g, repo / ".lifeos", RUN, TASK, baseline),
        )
        assert not (repo / ".lifeos" / "worktrees" / RUN).exists()
        assert git(repo, "branch", "--list", "lifeos/*") == ""

    @pytest.mark.parametrize(
        ("run_id", "task_id"),
        [("../x", TASK), ("a/b", TASK), ("", TASK), (".hidden", TASK), (RUN, "x..y"),
         (RUN, "T 1"), (RUN, "t.lock"), (RUN, "-x")],
    )  # fmt: skip
    def test_invalid_ids(self, repo: Path, run_id: str, task_id: str) -> None:
        g = hgit(repo)
        expect(
            ReasonCode.INVALID_INPUT,
            lambda: create_worktree(g, repo / ".lifeos", run_id, task_id, head(repo)),
        )

    def test_exists_without_reuse(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        expect(
            ReasonCode.WORKTREE_EXISTS,
            lambda: create_worktree(g, repo / ".lifeos", RUN, TASK, base),
        )

    def test_branch_of_another_run_exists(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        same_prefix = RUN[:8] + "-ffff"
        for reuse in (False, True):
            err = expect(
                ReasonCode.WORKTREE_EXISTS,
                partial(create_worktree, g, repo / ".lifeos", same_prefix, TASK, base, reuse=reuse),
            )
            assert f"lifeos/T-12-{RUN[:8]}" in err.message

    def test_stray_folder_at_path(self, repo: Path) -> None:
        g = hgit(repo)
        stray = repo / ".lifeos" / "worktrees" / RUN
        stray.mkdir(parents=True)
        (stray / "file").write_text("x")
        for reuse in (False, True):
            expect(
                ReasonCode.WORKTREE_EXISTS,
                partial(create_worktree, g, repo / ".lifeos", RUN, TASK, head(repo), reuse=reuse),
            )
        assert (stray / "file").read_text() == "x"
        assert sorted(p.name for p in stray.parent.iterdir()) == [RUN]


class TestReuse:
    def test_same_run_is_returned_as_is(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        (wt.path / "work.txt").write_text("in progress\n")
        again = create_worktree(g, repo / ".lifeos", RUN, TASK, base, reuse=True)
        assert again == wt
        assert (wt.path / "work.txt").read_text() == "in progress\n"

    def test_other_baseline_refused(self, repo: Path) -> None:
        g = hgit(repo)
        create_worktree(g, repo / ".lifeos", RUN, TASK, head(repo))
        expect(
            ReasonCode.WORKTREE_EXISTS,
            lambda: create_worktree(g, repo / ".lifeos", RUN, TASK, "HEAD~1", reuse=True),
        )

    def test_vanished_folder_is_checked_out_again(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        (wt.path / "new.txt").write_text("phase 1\n")
        c1 = commit_tree(g, wt.branch, stage_tree(g, wt), base, "phase 1")
        shutil.rmtree(wt.path)  # a crash, a cleaner, a reboot into a fresh tmp
        again = create_worktree(g, repo / ".lifeos", RUN, TASK, base, reuse=True)
        assert again == wt
        assert git(wt.path, "rev-parse", "HEAD").strip() == c1
        assert (wt.path / "new.txt").read_text() == "phase 1\n"

    def test_branch_without_worktree_is_attached(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        (wt.path / "new.txt").write_text("phase 1\n")
        c1 = commit_tree(g, wt.branch, stage_tree(g, wt), base, "phase 1")
        remove_worktree(g, wt, delete_branch=False)
        assert not wt.path.exists()
        again = create_worktree(g, repo / ".lifeos", RUN, TASK, base, reuse=True)
        assert again == wt
        assert git(wt.path, "rev-parse", "HEAD").strip() == c1

    def test_branch_not_from_baseline_refused(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        other = g.run("commit-tree", f"{base}^{{tree}}", stdin=b"unrelated\n", dated=True)
        git(repo, "update-ref", f"refs/heads/lifeos/T-12-{RUN[:8]}", other.strip())
        expect(
            ReasonCode.WORKTREE_EXISTS,
            lambda: create_worktree(g, repo / ".lifeos", RUN, TASK, base, reuse=True),
        )


class TestRemoveAndList:
    def test_remove_is_idempotent_and_deletes_branch(self, repo: Path) -> None:
        g = hgit(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, head(repo))
        (wt.path / "dirty.txt").write_text("uncommitted\n")
        (wt.path / "README.md").write_text("changed\n")
        remove_worktree(g, wt, delete_branch=True)
        assert not wt.path.exists()
        assert g.ref(f"refs/heads/{wt.branch}") is None
        assert list_run_worktrees(g) == []
        remove_worktree(g, wt, delete_branch=True)  # already gone: fine
        assert "lifeos" not in git(repo, "worktree", "list")

    def test_remove_keeps_branch(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        remove_worktree(g, wt, delete_branch=False)
        assert g.ref(f"refs/heads/{wt.branch}") == base

    def test_remove_after_folder_vanished(self, repo: Path) -> None:
        g = hgit(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, head(repo))
        shutil.rmtree(wt.path)
        assert list_run_worktrees(g) == [wt]  # still registered
        remove_worktree(g, wt, delete_branch=True)
        assert list_run_worktrees(g) == []
        assert g.ref(f"refs/heads/{wt.branch}") is None

    def test_remove_refuses_the_checkout_and_foreign_branches(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        for path in (repo, repo.parent):
            bad = Worktree(path, "lifeos/x", base, RUN)
            expect(ReasonCode.WORKTREE_INVALID, partial(remove_worktree, g, bad, True))
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        foreign = Worktree(wt.path, "main", base, RUN)
        expect(ReasonCode.WORKTREE_INVALID, lambda: remove_worktree(g, foreign, True))
        assert wt.path.exists() and g.ref("refs/heads/main") == base
        assert (repo / "README.md").read_text() == "demo\n"

    def test_list_only_run_worktrees(self, repo: Path, tmp_path: Path) -> None:
        g, base = hgit(repo), head(repo)
        git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "feature"))
        b = create_worktree(g, repo / ".lifeos", RUN2, "T-2", base)
        a = create_worktree(g, repo / ".lifeos", RUN, TASK, "HEAD~1")
        assert list_run_worktrees(g) == sorted([a, b], key=lambda w: str(w.path))
        assert {w.baseline for w in list_run_worktrees(g)} == {base, a.baseline}


# ---------------------------------------------------------------------------- commits


class TestCommitTree:
    def test_commit_and_compare_and_swap(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        (wt.path / "src" / "app.py").write_text("print('built')\n")
        tree = stage_tree(g, wt)
        new = commit_tree(g, wt.branch, tree, base, "build: T-12")
        assert g.ref(f"refs/heads/{wt.branch}") == new
        assert git(repo, "rev-parse", f"{new}^{{tree}}").strip() == tree
        assert git(repo, "rev-parse", f"{new}^@").split() == [base]
        body = git(repo, "cat-file", "-p", new)
        assert "author LifeOS <lifeos@localhost> 1767225600 +0000" in body
        assert "committer LifeOS <lifeos@localhost> 1767225600 +0000" in body
        assert body.endswith("\n\nbuild: T-12\n")
        # The parent is stale now: the branch does not move.
        err = expect(
            ReasonCode.BRANCH_MOVED, lambda: commit_tree(g, wt.branch, tree, base, "again")
        )
        assert new in err.message
        assert g.ref(f"refs/heads/{wt.branch}") == new

    def test_missing_branch_is_branch_moved(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
        expect(ReasonCode.BRANCH_MOVED, lambda: commit_tree(g, "lifeos/none", tree, base, "m"))
        assert g.ref("refs/heads/lifeos/none") is None

    def test_bad_objects(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
        create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        branch = f"lifeos/T-12-{RUN[:8]}"
        expect(ReasonCode.BASELINE_MISSING, lambda: commit_tree(g, branch, tree, "1" * 40, "m"))
        expect(ReasonCode.BASELINE_MISSING, lambda: commit_tree(g, branch, "2" * 40, base, "m"))
        expect(ReasonCode.INVALID_INPUT, lambda: commit_tree(g, branch, base, base, "m"))
        expect(ReasonCode.INVALID_INPUT, lambda: commit_tree(g, branch, tree, tree, "m"))
        expect(ReasonCode.INVALID_INPUT, lambda: commit_tree(g, "bad..name", tree, base, "m"))
        assert g.ref(f"refs/heads/{branch}") == base

    def test_deterministic_ids(self, repo: Path, tmp_path: Path) -> None:
        base = head(repo)
        tree = git(repo, "rev-parse", "HEAD~1^{tree}").strip()
        for name in ("lifeos/a", "lifeos/b", "lifeos/c"):
            git(repo, "branch", name, base)
        first = commit_tree(hgit(repo), "lifeos/a", tree, base, "same")
        second = commit_tree(hgit(repo), "lifeos/b", tree, base, "same")
        later = commit_tree(
            hgit(repo, START + dt.timedelta(days=1)), "lifeos/c", tree, base, "same"
        )
        assert first == second != later

        # Two repositories built from nothing by two workers give the same ids.
        ids = []
        for name in ("one", "two"):
            r = tmp_path / name
            r.mkdir()
            git(r, "init", "-q", "-b", "main")
            (r / "f.txt").write_text("same content\n")
            g = hgit(r)
            g.run("add", "f.txt")
            t = g.run("write-tree").strip()
            root = g.run("commit-tree", t, stdin=b"root\n", dated=True).strip()
            g.run("update-ref", "refs/heads/lifeos/x", root)
            ids.append((root, commit_tree(g, "lifeos/x", t, root, "next")))
        assert ids[0] == ids[1]


class TestCheckoutCommit:
    def test_moves_worktree_and_cleans(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        (wt.path / "a.txt").write_text("a\n")
        c1 = commit_tree(g, wt.branch, stage_tree(g, wt), base, "a")
        assert checkout_commit(g, wt, c1) == c1
        assert git(wt.path, "status", "--porcelain") == ""
        (wt.path / "a.txt").write_text("scribbled\n")
        (wt.path / "junk.txt").write_text("junk\n")
        (wt.path / "artifacts" / "status").mkdir(parents=True)
        (wt.path / "artifacts" / "status" / "s.json").write_text("{}\n")
        assert checkout_commit(g, wt, base) == base
        assert not (wt.path / "a.txt").exists() and not (wt.path / "junk.txt").exists()
        assert (wt.path / "artifacts" / "status" / "s.json").exists()  # LifeOS-owned: kept
        assert g.ref(f"refs/heads/{wt.branch}") == base
        assert checkout_commit(g, wt, c1[:12]) == c1
        assert (wt.path / "a.txt").read_text() == "a\n"

    def test_refuses_what_is_not_the_run_worktree(self, repo: Path) -> None:
        g, base = hgit(repo), head(repo)
        wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
        (repo / "README.md").write_text("user's unsaved work\n")
        old = git(repo, "rev-parse", "HEAD~1").strip()
        for bad in (
            Worktree(repo, wt.branch, base, RUN),
            Worktree(repo / "src", wt.branch, base, RUN),
            Worktree(wt.path, "lifeos/other", base, RUN),
            Worktree(repo / ".lifeos" / "worktrees" / "gone", wt.branch, base, "gone"),
        ):
            expect(ReasonCode.WORKTREE_INVALID, partial(checkout_commit, g, bad, old))
        expect(ReasonCode.BASELINE_MISSING, lambda: checkout_commit(g, wt, "3" * 40))
        assert (repo / "README.md").read_text() == "user's unsaved work\n"
        assert head(repo) == base

    def test_rebuild_on_another_machine(self, repo: Path, tmp_path: Path) -> None:
        ga, base = hgit(repo), head(repo)
        wt_a = create_worktree(ga, repo / ".lifeos", RUN, TASK, base)
        (wt_a.path / "src" / "feature.py").write_text("X = 1\n")
        phase = commit_tree(ga, wt_a.branch, stage_tree(ga, wt_a), base, "build")

        machine_b = tmp_path / "machine-b"
        git(tmp_path, "clone", "-q", str(repo), str(machine_b))
        git(machine_b, "fetch", "-q", "origin", wt_a.branch)
        gb = hgit(machine_b)
        wt_b = create_worktree(gb, machine_b / ".lifeos", RUN, TASK, base)
        assert checkout_commit(gb, wt_b, phase) == phase
        assert (wt_b.path / "src" / "feature.py").read_text() == "X = 1\n"
        assert git(wt_b.path, "status", "--porcelain") == ""
        assert stage_tree(gb, wt_b) == git(repo, "rev-parse", f"{phase}^{{tree}}").strip()


# ------------------------------------------------------------ hooks, config, signing


MARKER_HOOKS = (
    "pre-commit",
    "post-commit",
    "post-checkout",
    "reference-transaction",
    "post-index-change",
    "pre-auto-gc",
    "commit-msg",
)


def install_marker_hooks(hooks: Path, marker: Path) -> None:
    hooks.mkdir(parents=True, exist_ok=True)
    for name in MARKER_HOOKS:
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> '{marker}'\nexit 0\n")
        hook.chmod(0o755)


def marker_script(path: Path, marker: Path, exit_code: int) -> Path:
    path.write_text(f"#!/bin/sh\necho \"$0 $*\" >> '{marker}'\nexit {exit_code}\n")
    path.chmod(0o755)
    return path


def full_cycle(g: HardenedGit, repo: Path) -> tuple[str, str]:
    base = head(repo)
    wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
    (wt.path / "src" / "new.py").write_text("N = 2\n")
    new = commit_tree(g, wt.branch, stage_tree(g, wt), base, "build")
    checkout_commit(g, wt, new)
    # A plain `git commit` through HardenedGit (pre-commit, commit-msg, post-commit).
    g.run("commit", "-q", "--allow-empty", "-m", "plain", cwd=wt.path, dated=True)
    plain = g.run("rev-parse", "HEAD", cwd=wt.path).strip()
    create_worktree(g, repo / ".lifeos", RUN, TASK, base, reuse=True)
    list_run_worktrees(g)
    remove_worktree(g, wt, delete_branch=True)
    return new, plain


class TestNothingOfTheUsersRuns:
    def test_hooks_never_run(self, repo: Path, tmp_path: Path) -> None:
        marker = tmp_path / "marker"
        install_marker_hooks(repo / ".git" / "hooks", marker)
        custom = tmp_path / "custom-hooks"
        install_marker_hooks(custom, marker)
        fsmonitor = marker_script(tmp_path / "fsmonitor", marker, 1)
        full_cycle(hgit(repo), repo)
        git(repo, "config", "core.hooksPath", str(custom))
        git(repo, "config", "core.fsmonitor", str(fsmonitor))
        full_cycle(hgit(repo), repo)
        snapshot_outside(repo, None)
        assert not marker.exists()
        # The hooks are live: plain git runs them.
        git(repo, "commit", "-q", "--allow-empty", "-m", "by the user")
        assert "pre-commit" in marker.read_text()

    def test_global_and_repository_signing_config_ignored(
        self, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        marker = tmp_path / "gpg-called"
        gpg = marker_script(tmp_path / "fake-gpg", marker, 1)
        hooks = tmp_path / "global-hooks"
        install_marker_hooks(hooks, marker)
        home = tmp_path / "home"
        (home / ".config" / "git").mkdir(parents=True)
        config = (
            f"[commit]\n\tgpgsign = true\n[tag]\n\tgpgsign = true\n[gpg]\n\tprogram = {gpg}\n"
            f"[user]\n\tname = Global User\n\temail = global@example.org\n"
            f"[core]\n\thooksPath = {hooks}\n[i18n]\n\tcommitEncoding = ISO-8859-1\n"
        )
        (home / ".gitconfig").write_text(config)
        (home / ".config" / "git" / "config").write_text(config)
        git(repo, "config", "commit.gpgsign", "true")
        git(repo, "config", "gpg.program", str(gpg))
        git(repo, "config", "i18n.commitEncoding", "ISO-8859-1")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        monkeypatch.setenv("GIT_AUTHOR_NAME", "Intruder")
        monkeypatch.setenv("GIT_COMMITTER_DATE", "2001-01-01T00:00:00Z")
        monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "elsewhere-index"))
        monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
        monkeypatch.setenv("GIT_CONFIG_KEY_0", "commit.gpgsign")
        monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")

        commits = full_cycle(hgit(repo), repo)
        monkeypatch.undo()
        assert not marker.exists()
        for commit, second in zip(commits, ("00", "01"), strict=True):
            body = git(repo, "cat-file", "-p", commit)
            assert "gpgsig" not in body and "encoding" not in body
            stamp = int(START.timestamp()) + int(second)
            assert f"author LifeOS <lifeos@localhost> {stamp} +0000" in body
            assert f"committer LifeOS <lifeos@localhost> {stamp} +0000" in body


# ------------------------------------------------------------- external-change guard


@pytest.fixture
def run_repo(repo: Path) -> tuple[Path, Worktree, HardenedGit]:
    g = hgit(repo)
    wt = create_worktree(g, repo / ".lifeos", RUN, TASK, head(repo))
    return repo, wt, g


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _flip_x(path: Path) -> None:
    path.chmod(path.stat().st_mode ^ (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))


CHANGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "new hook": (
        lambda r: _write(r / ".git" / "hooks" / "pre-commit", "#!/bin/sh\n"),
        "hook .git/hooks/pre-commit added",
    ),
    "hook made (not) executable": (
        lambda r: _flip_x(r / ".git" / "hooks" / "pre-push.sample"),
        "hook .git/hooks/pre-push.sample changed",
    ),
    "config": (
        lambda r: git(r, "config", "core.sshCommand", "evil"),
        "config .git/config changed",
    ),
    "info/exclude": (
        lambda r: _write(r / ".git" / "info" / "exclude", "*.py\n"),
        "info .git/info/exclude changed",
    ),
    "info new file": (
        lambda r: _write(r / ".git" / "info" / "attributes", "* filter=x\n"),
        "info .git/info/attributes added",
    ),
    "tracked file": (
        lambda r: _write(r / "README.md", "changed\n"),
        "checkout file README.md changed",
    ),
    "tracked file deleted": (
        lambda r: (r / "src" / "app.py").unlink(),
        "checkout file src/app.py changed",
    ),
    "untracked file": (
        lambda r: _write(r / "notes" / "todo.txt", "x\n"),
        "checkout file notes/todo.txt added",
    ),
    "staged file": (
        lambda r: git(r, "add", _write(r / "staged.txt", "s\n")),
        "index .git/index changed",
    ),
    "moved HEAD": (
        lambda r: git(r, "commit", "-q", "--allow-empty", "-m", "user"),
        "ref refs/heads/main moved",
    ),
    "detached HEAD": (
        lambda r: git(r, "checkout", "-q", "--detach", "HEAD~1"),
        "HEAD moved from",
    ),
    "new tag": (lambda r: git(r, "tag", "v1"), "ref refs/tags/v1 added"),
    "new user branch": (lambda r: git(r, "branch", "topic"), "ref refs/heads/topic added"),
    "switched branch": (
        lambda r: git(r, "checkout", "-q", "-b", "other"),
        "HEAD changed from 'ref: refs/heads/main' to 'ref: refs/heads/other'",
    ),
}


class TestSnapshot:
    @pytest.mark.parametrize("name", list(CHANGES))
    def test_detects(self, run_repo: tuple[Path, Worktree, HardenedGit], name: str) -> None:
        repo, wt, _ = run_repo
        change, expected = CHANGES[name]
        before = snapshot_outside(repo, wt.path)
        assert snapshot_outside(repo, wt.path).diff(before) == []
        change(repo)
        diff = before.diff(snapshot_outside(repo, wt.path))
        assert any(line.startswith(expected) for line in diff), diff

    def test_moved_head_named(self, run_repo: tuple[Path, Worktree, HardenedGit]) -> None:
        repo, wt, _ = run_repo
        old = head(repo)
        before = snapshot_outside(repo, wt.path)
        git(repo, "commit", "-q", "--allow-empty", "-m", "user")
        diff = before.diff(snapshot_outside(repo, wt.path))
        assert diff[0] == f"HEAD moved from {old} to {head(repo)}"

    def test_already_dirty_file_changed_again(
        self, run_repo: tuple[Path, Worktree, HardenedGit]
    ) -> None:
        repo, wt, _ = run_repo
        (repo / "README.md").write_text("user edit\n")
        (repo / "scratch.txt").write_text("1\n")
        before = snapshot_outside(repo, wt.path)
        (repo / "README.md").write_text("agent edit\n")
        (repo / "scratch.txt").write_text("2\n")
        assert before.diff(snapshot_outside(repo, wt.path)) == [
            "checkout file README.md changed",
            "checkout file scratch.txt changed",
        ]

    def test_ignores_worktree_and_lifeos_paths(
        self, run_repo: tuple[Path, Worktree, HardenedGit]
    ) -> None:
        repo, wt, g = run_repo
        before = snapshot_outside(repo, wt.path)
        (wt.path / "src" / "app.py").write_text("print('agent')\n")
        (wt.path / "brand-new.txt").write_text("x\n")
        new = commit_tree(g, wt.branch, stage_tree(g, wt), wt.baseline, "build")
        checkout_commit(g, wt, new)
        _write(repo / ".lifeos" / "store.sqlite", "db")
        _write(repo / ".lifeos" / "evidence" / RUN / "hashes.json", "{}")
        _write(repo / "artifacts" / "status" / "run.json", "{}")
        _write(repo / "artifacts" / "packets" / "status" / "p.json", "{}")
        _write(repo / "artifacts" / "evidence" / "openclaw" / "jobs" / "j" / "job.json", "{}")
        other = create_worktree(g, repo / ".lifeos", RUN2, "T-2", wt.baseline)
        (other.path / "x").write_text("y\n")
        assert before.diff(snapshot_outside(repo, wt.path)) == []

    def test_worktree_inside_checkout_but_outside_lifeos(self, repo: Path) -> None:
        g = hgit(repo)
        wt = create_worktree(g, repo / "scratch-lifeos", RUN, TASK, head(repo))
        (repo / "scratch-lifeos" / ".gitignore").unlink()
        before = snapshot_outside(repo, wt.path)
        (wt.path / "README.md").write_text("agent\n")
        assert before.diff(snapshot_outside(repo, wt.path)) == []
        _write(repo / "scratch-lifeos" / "other.txt", "x")
        diff = before.diff(snapshot_outside(repo, wt.path))
        assert diff == ["checkout file scratch-lifeos/other.txt added"]

    def test_configured_hooks_folder_covered(self, repo: Path, tmp_path: Path) -> None:
        hooks = tmp_path / "shared-hooks"
        hooks.mkdir()
        git(repo, "config", "core.hooksPath", str(hooks))
        before = snapshot_outside(repo, None)
        _write(hooks / "pre-push", "#!/bin/sh\n")
        assert f"hook {hooks / 'pre-push'} added" in before.diff(snapshot_outside(repo, None))

    def test_round_trip(self, run_repo: tuple[Path, Worktree, HardenedGit]) -> None:
        repo, wt, _ = run_repo
        (repo / "README.md").write_text("dirty\n")
        (repo / "new.txt").write_text("n\n")
        git(repo, "mv", "src/app.py", "src/main.py")
        snap = snapshot_outside(repo, wt.path)
        data = snap.to_dict()
        assert OutsideSnapshot.from_dict(data) == snap
        assert OutsideSnapshot.from_dict(data).diff(snapshot_outside(repo, wt.path)) == []
        assert set(snap.checkout) == {"README.md", "new.txt", "src/main.py"}
        expect(ReasonCode.INVALID_INPUT, lambda: OutsideSnapshot.from_dict({"head": None}))

    def test_empty_repository(self, tmp_path: Path) -> None:
        r = tmp_path / "empty"
        r.mkdir()
        git(r, "init", "-q", "-b", "main")
        before = snapshot_outside(r, None)
        assert before.head is None and before.head_ref == "ref: refs/heads/main"
        (r / "a.txt").write_text("a\n")
        assert before.diff(snapshot_outside(r, None)) == ["checkout file a.txt added"]

    def test_not_a_repository(self, tmp_path: Path) -> None:
        expect(ReasonCode.GIT_FAILED, lambda: snapshot_outside(tmp_path, None))

    def test_cheap(self, repo: Path) -> None:
        for i in range(200):
            _write(repo / "pkg" / f"m{i}.py", f"X = {i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "many")
        snapshot_outside(repo, None)
        start = time.perf_counter()
        snapshot_outside(repo, None)
        assert time.perf_counter() - start < 2.0


def test_users_checkout_never_modified(repo: Path) -> None:
    """A dirty user checkout (staged, modified, untracked) survives every function."""
    (repo / "README.md").write_text("unsaved\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "staged.txt").write_text("staged then edited\n")
    (repo / "untracked.txt").write_text("mine\n")
    index = (repo / ".git" / "index").read_bytes()
    files = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    before = snapshot_outside(repo, None)
    status = git(repo, "status", "--porcelain=v2", "--untracked-files=all")

    g = hgit(repo)
    base = head(repo)
    wt = create_worktree(g, repo / ".lifeos", RUN, TASK, base)
    snapshot_outside(repo, wt.path)
    (wt.path / "README.md").write_text("agent\n")
    new = commit_tree(g, wt.branch, stage_tree(g, wt), base, "build")
    checkout_commit(g, wt, base)
    checkout_commit(g, wt, new)
    create_worktree(g, repo / ".lifeos", RUN, TASK, base, reuse=True)
    list_run_worktrees(g)
    remove_worktree(g, wt, delete_branch=True)

    assert before.diff(snapshot_outside(repo, None)) == []
    assert (repo / ".git" / "index").read_bytes() == index
    for path, data in files.items():
        assert path.read_bytes() == data, path
    assert git(repo, "status", "--porcelain=v2", "--untracked-files=all") == status
    assert head(repo) == base


def test_hardened_git_in_subprocess_has_no_tty_prompt(repo: Path) -> None:
    """A command that would ask for credentials fails instead of waiting."""
    g = hgit(repo)
    start = time.perf_counter()
    proc = g.completed("ls-remote", "https://127.0.0.1:9/nothing.git")
    assert proc.returncode != 0
    assert time.perf_counter() - start < 60
    assert isinstance(proc, subprocess.CompletedProcess)

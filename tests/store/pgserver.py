"""A PostgreSQL server for the tests: a throwaway local one, or an external one.

``LIFEOS_TEST_PG_URL`` names an external server (a ``postgresql://`` URL whose login may
create databases); the tests create and drop databases named ``lifeos_t_*`` on it.
Otherwise the tests start their own server from the PostgreSQL binaries (``initdb``,
``pg_ctl``, ``postgres``) in ``LIFEOS_TEST_PG_BIN``, ``/usr/local/bin`` or on the PATH:
a data directory in a fresh temporary folder, trust authentication, listening on
127.0.0.1 on a free port, durability off (``fsync=off``: it is thrown away), stopped and
deleted at the end of the session. PostgreSQL refuses to run as root, so under root the
server runs as the ``postgres`` system user. Its databases use an ICU English collation
where the server has ICU, so a store that let the server's text order leak would fail.

Each test gets databases of its own, empty when it starts: a copy of an empty template,
or a database an earlier test used and that was emptied after it. So tests are isolated
and run side by side under pytest-xdist (each xdist worker starts a server of its own).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_URL = "LIFEOS_TEST_PG_URL"
ENV_BIN = "LIFEOS_TEST_PG_BIN"
BINARIES = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT_S = 60

_WATCHDOG = """
import os, shutil, signal, sys, time
parent, data, base = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while os.getppid() == parent and os.path.isdir(base):
    time.sleep(0.5)
if os.path.isdir(base):  # the test process died without stopping its server
    try:
        with open(os.path.join(data, "postmaster.pid")) as pidfile:
            pid = int(pidfile.readline())
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass
    shutil.rmtree(base, ignore_errors=True)
"""
"""Run beside a local server: when the test process that started it dies without
stopping it (killed, interrupted), stop the server and delete its folder."""


def find_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when there is none."""
    candidates = [os.environ.get(ENV_BIN), "/usr/local/bin"]
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).parent))
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in BINARIES):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A server the tests may create databases on; :meth:`stop` ends what was started."""

    def __init__(self, admin_url: str, *, local: _LocalServer | None = None) -> None:
        import psycopg

        self.admin_url = admin_url
        self._local = local
        self._lock = threading.Lock()
        self._tag = f"{os.getpid()}_{hashlib.sha256(os.urandom(8)).hexdigest()[:6]}"
        self._admin = psycopg.connect(admin_url, autocommit=True)
        version = self._admin.info.server_version
        self._strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
        self.template = f"lifeos_tpl_{self._tag}"
        self._admin.execute(f'CREATE DATABASE "{self.template}"')
        self._created: set[str] = set()
        self._in_use: dict[str, str] = {}
        self._free: list[str] = []
        self._count = 0

    def url(self, dbname: str) -> str:
        """A ``postgresql://`` URL of database ``dbname`` on this server."""
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{dbname}"))

    def database_name(self, location: Path | str) -> str:
        """The database that stands for ``location`` (a test's folder) on this server.

        Raises:
            KeyError: ``location`` has no database (see :meth:`database_url`).
        """
        return self._in_use[str(location)]

    def database_url(self, location: Path | str) -> str:
        """The URL of ``location``'s database: an empty one on first use.

        An empty database is a new copy of the template, or one a finished test gave
        back (:meth:`drop_database`) and that was emptied then.
        """
        key = str(location)
        with self._lock:
            if key not in self._in_use:
                if self._free:
                    name = self._free.pop()
                else:
                    self._count += 1
                    name = f"lifeos_t_{self._tag}_{self._count}"
                    self._admin.execute(
                        f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"{self._strategy}'
                    )
                    self._created.add(name)
                self._in_use[key] = name
            return self.url(self._in_use[key])

    def drop_database(self, location: Path | str) -> None:
        """Empty ``location``'s database (ending its connections) and keep it for reuse.

        Emptying (dropping every schema, recreating ``public``) takes a few milliseconds;
        dropping and creating a database takes a checkpoint each, ten times as long.
        """
        with self._lock:
            name = self._in_use.pop(str(location), None)
            if name is None:
                return
            try:
                self._admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                schemas = self.execute(
                    name,
                    "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                    "AND nspname <> 'information_schema'",
                )
                drops = "".join(f'DROP SCHEMA "{s}" CASCADE; ' for (s,) in schemas)
                self.execute(name, drops + "CREATE SCHEMA public AUTHORIZATION pg_database_owner")
            except Exception:
                self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                self._created.discard(name)
                raise
            self._free.append(name)

    def execute(self, dbname: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in ``dbname`` on a connection of its own; its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as db:
            cur = db.execute(sql.encode("utf-8"), args or None)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        """Drop what the tests created; stop and delete a server started here."""
        try:
            for name in sorted(self._created):
                self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        finally:
            self._created.clear()
            self._in_use.clear()
            self._free.clear()
            self._admin.close()
            if self._local is not None:
                self._local.stop()


class _LocalServer:
    """A server started from the binaries, in a temporary folder of its own."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="lifeos-pg-"))
        self.data = self.base / "data"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # initdb and postgres refuse root
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.base, ignore_errors=True)
                raise RuntimeError(
                    "running as root and there is no 'postgres' user to run PostgreSQL as"
                ) from None
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.port = 0
        self._watchdog: subprocess.Popen[bytes] | None = None

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base)}
        env["LC_ALL"] = env["LANG"] = "C.UTF-8"
        return subprocess.run(
            args,
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
            **self._as,
        )

    def start(self) -> str:
        """initdb, then start on a free port; the superuser's URL."""
        initdb = str(self.bin_dir / "initdb")
        common = [initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        common += ["--no-sync", "--no-instructions", "--locale=C.UTF-8"]
        proc = self._run(*common, "--locale-provider=icu", "--icu-locale=en")
        if proc.returncode != 0:  # a server built without ICU
            shutil.rmtree(self.data, ignore_errors=True)
            proc = self._run(*common)
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {proc.stderr or proc.stdout}")
        for _ in range(3):  # another process may take the free port first
            self.port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {self.port} -k {self.base} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB "
                "-c max_connections=200"
            )
            proc = self._run(
                str(self.bin_dir / "pg_ctl"),
                *("-D", str(self.data), "-l", str(self.base / "server.log")),
                *("-w", "-t", str(START_TIMEOUT_S), "-o", options, "start"),
            )
            if proc.returncode == 0:
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.data)]
                    + [str(self.base)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        log = (self.base / "server.log").read_text(encoding="utf-8", errors="replace")
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start: {proc.stderr}\n{log[-2000:]}")

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
        if self._watchdog is not None:  # it sees the folder gone and ends
            self._watchdog.wait(timeout=10)
            self._watchdog = None


def start_server() -> PostgresServer | str:
    """A server for this test session, or why there is none (no binaries, no URL).

    Raises:
        RuntimeError: the binaries are there but the server would not start.
    """
    external = os.environ.get(ENV_URL)
    if external:
        return PostgresServer(external)
    bin_dir = find_binaries()
    if bin_dir is None:
        return (
            f"no PostgreSQL server binaries ({', '.join(BINARIES)}) in ${ENV_BIN}, "
            f"/usr/local/bin or on PATH, and no ${ENV_URL}"
        )
    local = _LocalServer(bin_dir)
    url = local.start()
    try:
        return PostgresServer(url, local=local)
    except BaseException:
        local.stop()
        raise

"""A private PostgreSQL for the test session: `initdb` and `pg_ctl` on a free loopback port.

Owns: finding the server binaries (`pg_ctl` on PATH, else Debian's
`/usr/lib/postgresql/<version>/bin`, newest first), creating a cluster in a
fresh temp directory (trust auth for loopback only, no unix socket outside
that directory, fsync off: a throwaway database), starting it, creating the
database `test`, and stopping it and removing the directory. PostgreSQL
refuses to run as root: as root it runs as the `postgres` user (created by
Debian's `postgresql` package) through `runuser`, in a directory that user
owns. Must not: touch any other PostgreSQL on the machine, listen beyond
127.0.0.1, or wait without a bound.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import psycopg2

from tests.server import free_port

START_TIMEOUT_S = 60.0
DATABASE = "test"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or no way to run them."""


def server_bin_dir() -> str:
    candidates = [os.path.dirname(os.path.realpath(shutil.which("pg_ctl")))] if shutil.which("pg_ctl") else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for directory in candidates:
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise PostgresUnavailable("no initdb/pg_ctl: install Debian's postgresql package (.ci/run does), or set "
                              "STARCITE_TEST_POSTGRES_URL to a server whose database `test` the user may use")


def _version(path: str) -> tuple:
    name = path.split("/")[-2]
    return tuple(int(part) for part in name.split(".") if part.isdigit())


class PrivatePostgres:
    """``PrivatePostgres().start()``; ``.url``; ``.stop()`` (idempotent)."""

    def __init__(self):
        self.bin_dir = server_bin_dir()
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self.run_as = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("PostgreSQL will not run as root and there is no `postgres` user "
                                          "(Debian's postgresql package creates it)") from None
        self.root = tempfile.mkdtemp(prefix="starcite-test-pg-")
        self.data = os.path.join(self.root, "data")
        if self.run_as is not None:
            os.chown(self.root, self.run_as.pw_uid, self.run_as.pw_gid)
        self.started = False

    def _run(self, tool, *args, timeout=START_TIMEOUT_S):
        command = [os.path.join(self.bin_dir, tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{tool} failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}")
        return done

    def start(self):
        try:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-o", options,
                      "-w", "-t", str(int(START_TIMEOUT_S)), "start")
            self.started = True
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_database(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                conn = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=5)
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
        conn.close()

    def stop(self):
        if self.started:
            self.started = False
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)


_shared = None


def shared_postgres_url() -> str:
    """`STARCITE_TEST_POSTGRES_URL` when set; else the session's private server, started on first use."""
    global _shared
    url = os.environ.get("STARCITE_TEST_POSTGRES_URL")
    if url:
        return url
    if _shared is None:
        _shared = PrivatePostgres().start()
    return _shared.url


def stop_shared():
    """Stop the session's private server, if one was started (the test session's last step)."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None

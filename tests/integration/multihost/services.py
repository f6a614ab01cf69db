"""The services the hosts share, started by the test in the root namespace and listening on
the bridge's address only: a PostgreSQL cluster of the test's own and a ``redis-server``.
(The S3 server is moto's, tests/storage/s3.py.)

The cluster is a fresh ``initdb`` in a temporary folder, run as the ``postgres`` user
(initdb refuses root), without a Unix socket: nothing of it meets the machine's own
cluster but the binaries.
"""

import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from tests.integration.conftest import free_port
from tests.integration.processes import STOP_SECONDS, ServiceProcess
from tests.waiting import wait_until

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES_USER = "postgres"
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def postgres_unavailable() -> str:
    """Why a private PostgreSQL cluster cannot be started here; empty if it can."""
    if not (POSTGRES_BIN / "initdb").exists():
        return f"need PostgreSQL 15's server programs in {POSTGRES_BIN}"
    if subprocess.run(["id", POSTGRES_USER], capture_output=True).returncode:
        return f"need the OS user {POSTGRES_USER!r} to run PostgreSQL as"
    if shutil.which("redis-server") is None:
        return "need redis-server"
    return ""


def _as_postgres(*arguments: str) -> list[str]:
    return ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", "--init-groups"] + [
        *arguments
    ]


class PostgresCluster:
    """``initdb`` + ``postgres`` on ``address``, trusting the bridge's subnet, never saved
    to disk for real (fsync off): it lives as long as the test."""

    def __init__(self, *, address: str, log_dir: Path):
        self.address = address
        self.port = free_port(address)
        self.log_dir = log_dir
        # Not under pytest's tmp_path: the postgres user must reach the folder.
        self.data_dir = Path(tempfile.mkdtemp(prefix="multihost-pg-"))
        self.process: ServiceProcess | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{POSTGRES_USER}@{self.address}:{self.port}/{database}"

    def start(self) -> None:
        shutil.chown(self.data_dir, user=POSTGRES_USER, group=POSTGRES_USER)
        initdb = [str(POSTGRES_BIN / "initdb"), "-D", str(self.data_dir), "--auth=trust"]
        subprocess.run(
            _as_postgres(*initdb, "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subnet = self.address.rpartition(".")[0] + ".0/24"
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet} trust\n")
        server = [str(POSTGRES_BIN / "postgres"), "-D", str(self.data_dir)]
        for setting in (
            f"listen_addresses={self.address}",
            f"port={self.port}",
            "unix_socket_directories=",
            "fsync=off",
            "full_page_writes=off",
            "max_connections=200",
        ):
            server += ["-c", setting]
        self.process = ServiceProcess(
            "postgres",
            _as_postgres(*server),
            env=SYSTEM_ENV,
            log_path=self.log_dir / "postgres.log",
        )
        self.process.wait_for_log("database system is ready to accept connections")

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended), SIGKILL if that hangs; then the folder."""
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process.stop()  # closes its log
            self.process = None
        shutil.rmtree(self.data_dir, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` on ``address``, with a password (Redis takes connections from
    other hosts only with one, or with its protected mode off), without persistence."""

    def __init__(self, *, address: str, log_dir: Path):
        self.port = free_port(address)
        password = secrets.token_urlsafe(16)
        self.url = f"redis://:{password}@{address}:{self.port}/0"
        command = ["redis-server", "--bind", address, "--port", str(self.port), "--save", ""]
        command += ["--appendonly", "no", "--dir", str(log_dir), "--requirepass", password]
        self.process = ServiceProcess(
            "redis", command, env=SYSTEM_ENV, log_path=log_dir / "redis.log"
        )
        wait_until(
            lambda: "Ready to accept connections" in self.process.log(),
            timeout=30,
            what="redis-server to start",
        )

    def stop(self) -> None:
        self.process.stop()

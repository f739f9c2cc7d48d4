"""Private MariaDB and PostgreSQL servers for the fault suite: stopped and started for real.

The shared servers (3306, 5432) serve everyone's tests and must never be restarted, so a
scenario that restarts the warehouse gets a server of its own: initialised once per module
in a temporary directory, listening on 127.0.0.1 on a free port, with a password user (so
the token scan has a database password to look for). ``restart`` stops it (fast shutdown:
open sessions are cut, as in a real restart) and starts it again on the same port and data.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

PASSWORD = "pw-private-db-5ecret"
USER = "ss"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            engine.dispose()


class PrivateServer:
    name = ""
    scheme = ""
    admin_db = ""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"ss-{self.name}-"))
        self.port = free_port()
        self.restarts = 0
        self.running = False

    def url(self, database: str | None = None) -> str:
        return f"{self.scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database or self.admin_db}"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def create_database(self) -> str:
        name = f"ss_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(self.create_sql(name)))
        engine.dispose()
        return self.url(name)

    def create_sql(self, name: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres(PrivateServer):
    name, scheme, admin_db = "postgres", "postgresql+psycopg", "postgres"

    @staticmethod
    def missing() -> str | None:
        return None if glob.glob("/usr/lib/postgresql/*/bin/initdb") else "no /usr/lib/postgresql/*/bin/initdb"

    def __init__(self) -> None:
        super().__init__()
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
        # initdb refuses to run as root: the cluster then belongs to the postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", USER, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o", options, "start")
        _wait_for(self.url())
        self.running = True

    def stop(self) -> None:
        # fast: open sessions are terminated, as a restart of a real server does.
        if self.running:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        self.running = False

    def create_sql(self, name: str) -> str:
        return f'CREATE DATABASE "{name}"'


class PrivateMariaDB(PrivateServer):
    name, scheme, admin_db = "mariadb", "mysql+pymysql", "mysql"

    @staticmethod
    def missing() -> str | None:
        absent = [b for b in ("mariadbd", "mariadb-install-db") if shutil.which(b) is None
                  and not Path(f"/usr/sbin/{b}").exists()]
        return f"no {', '.join(absent)}" if absent else None

    def __init__(self, *, buffer_pool: str = "64M", flush_log_at_trx_commit: int = 2) -> None:
        # The fault suite's defaults are small and fast; bench/mariadb_server.py asks for a
        # given pool with the shared server's durable commits (1).
        self.buffer_pool, self.flush_log_at_trx_commit = buffer_pool, flush_log_at_trx_commit
        super().__init__()
        self.server_bin = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc: subprocess.Popen[bytes] | None = None
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.dir / 'data'}",
                        "--auth-root-authentication-method=normal", "--skip-test-db", *user],
                       check=True, capture_output=True, timeout=180)
        self._user = user
        self.start(first=True)

    def start(self, first: bool = False) -> None:
        self.proc = subprocess.Popen(
            [self.server_bin, "--no-defaults", f"--datadir={self.dir / 'data'}", f"--port={self.port}",
             f"--socket={self.dir / 'sock'}", "--bind-address=127.0.0.1", "--skip-networking=0",
             f"--pid-file={self.dir / 'pid'}", f"--log-error={self.dir / 'err.log'}",
             f"--innodb-buffer-pool-size={self.buffer_pool}",
             f"--innodb-flush-log-at-trx-commit={self.flush_log_at_trx_commit}", *self._user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if first:  # root has no password and may connect from the socket only: add the test user
            import pymysql

            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = pymysql.connect(unix_socket=str(self.dir / "sock"), user="root")
                    break
                except pymysql.err.OperationalError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
                cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'127.0.0.1'")
            conn.close()
        _wait_for(self.url())
        self.running = True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a normal shutdown, connections are closed
            self.proc.wait(timeout=60)
        self.proc = None
        self.running = False

    def create_sql(self, name: str) -> str:
        return f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"

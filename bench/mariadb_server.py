"""A private MariaDB server for a benchmark: its own data folder, a free loopback port and
the buffer pool asked for, so that a figure says which server it was measured on.

The machine's shared server runs at Debian's defaults (a 128 MB InnoDB buffer pool, read
with ``O_DIRECT``): a million orders' tables (about 650 MB) do not fit, and every pass
over rows a run touches goes to the disk again. A warehouse server is sized to hold them
(docs/deploy.md); ``bench/e2e.py --mariadb-buffer-pool 1G`` measures that server beside
the shared one without changing the shared one's settings.

    with private_mariadb(Path("/tmp/x"), "1G") as url:   # mysql+pymysql://root@127.0.0.1:PORT/test
        ...
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _program(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if found:
            return found
    raise RuntimeError(f"none of {', '.join(names)} found: install Debian's mariadb-server to use a private server")


@contextmanager
def private_mariadb(folder: Path, buffer_pool: str, ready_seconds: float = 60.0) -> Iterator[str]:
    """Start ``mariadbd`` on a new data folder under ``folder``; yield an admin URL (root,
    no password, database ``test``); stop the server and delete its data afterwards."""
    data = folder / "mariadb-data"
    folder.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    install = subprocess.run(
        [_program("mariadb-install-db", "mysql_install_db"), "--no-defaults", f"--datadir={data}", f"--user={user}",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        capture_output=True, text=True, check=False)
    if install.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed ({install.returncode}): {install.stderr[-2000:]}")
    port = _free_port()
    # The socket goes to a short path: a Unix socket's path is limited to about 100 bytes.
    sockdir = Path(tempfile.mkdtemp(prefix="ss_mdb_"))
    log = folder / "mariadb-error.log"
    proc = subprocess.Popen(
        [_program("mariadbd", "mysqld"), "--no-defaults", f"--datadir={data}", f"--user={user}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={sockdir / 'sock'}", f"--pid-file={sockdir / 'pid'}",
         f"--innodb-buffer-pool-size={buffer_pool}", f"--log-error={log}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"mysql+pymysql://root@127.0.0.1:{port}/test"
    try:
        engine = sa.create_engine(url.removesuffix("/test"), isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + ready_seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {proc.returncode}: see {log}")
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS test")
                break
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not answer on port {port} in {ready_seconds:.0f} s") from None
                time.sleep(0.2)
        engine.dispose()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


def server_settings(url: str) -> str:
    """The server's version and the settings that decide its speed at scale, as one line."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version, pool, flush = conn.exec_driver_sql(
                "SELECT @@version, @@innodb_buffer_pool_size, @@innodb_flush_method").one()
    finally:
        engine.dispose()
    return f"MariaDB {version}, innodb_buffer_pool_size {int(pool) >> 20} MB, innodb_flush_method {flush}"

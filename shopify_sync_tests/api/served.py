"""`shopify-sync api` started for real in a child process, for tests that need the served app
(uvicorn's access log, signal handling) rather than FastAPI's in-process TestClient."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class ServedApi:
    base: str
    output: str = field(default="")  # the child's stdout+stderr, filled when it has stopped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served_api(home: Path, token: str, start_timeout: float = 60) -> Iterator[ServedApi]:
    """Run the API on a free loopback port with only ``home`` and ``token`` from the environment
    (no SHOPIFY_/DAGSTER_ variables leak in); stop it with SIGINT and keep its output."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env.update({"SHOPIFY_SYNC_HOME": str(home), "SHOPIFY_SYNC_API_TOKEN": token})
    proc = subprocess.Popen([sys.executable, "-m", "shopify_sync.cli", "api", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    served = ServedApi(base=f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{served.base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.3)
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        served.output = out.decode()

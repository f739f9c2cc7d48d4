"""The Docker deployment on loopback, for the Docker deployment test (docs/deploy.md).

The same webserver, daemon and PostgreSQL instance storage as ``Deployment``, with
``deploy/docker/dagster.yaml``: the ``DockerRunLauncher`` starts each run in a container
of the code location's image (``deploy/Dockerfile``), on the host's network. The code
server runs in a container of that image too, as a Docker deployment runs it, so the runs'
code origin (interpreter, module) is the image's. No Celery workers: the run container
runs its steps. Every container carries a label of this deployment, so it is removed
with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

from shopify_sync_tests.deploy.deployment import REPO, Deployment, instance_config

IMAGE = os.environ.get("SHOPIFY_SYNC_TEST_IMAGE", "shopify-sync:0.1.0")
LABEL = "shopify_sync/test_deployment"
BUILD = ("docker build --network host -f deploy/Dockerfile -t {image} . (without a registry, first "
         "`sh deploy/docker/build-base-image.sh` and add --build-arg BASE_IMAGE=shopify-sync-base:bookworm)")
# Optional settings the test's deployment sets; a deployment lists the ones it sets (the
# shipped file lists only what every deployment must set: see its comment).
OPTIONAL_VARIABLES = ("SHOPIFY_SYNC_START_DATE", "SHOPIFY_POLL_INTERVAL_SECONDS", "AWS_DEFAULT_REGION")
SHOP_VARIABLE = re.compile(r"SHOPIFY_[A-Z0-9]+_(STORE|TOKEN)")


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def docker_problem(image: str = IMAGE) -> str | None:
    """Why Docker runs cannot happen here (no client, no daemon, no image), or None."""
    if not shutil.which("docker"):
        return "no docker client on PATH"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if info.returncode != 0 or not info.stdout.strip():
        why = (info.stderr.strip().splitlines() or ["no server version"])[-1]
        return (f"`docker info` finds no daemon ({why}); start one, e.g. Debian's docker.io: "
                "`dockerd --bridge=none --iptables=false` (docs/deploy.md)")
    if docker("image", "inspect", "--format", "{{.Id}}", image).returncode != 0:
        return f"image {image} is absent; build it from the repository root: {BUILD.format(image=image)}"
    return None


@dataclass
class DockerDeployment(Deployment):
    image: str = IMAGE
    workers: int = 0
    location: str = "shopify_sync"
    label: str = field(default_factory=lambda: f"ss-{uuid.uuid4().hex[:12]}")

    def instance(self) -> dict[str, Any]:
        config = instance_config(REPO / "deploy" / "docker" / "dagster.yaml")
        launcher = config["run_launcher"]["config"]
        launcher["env_vars"] += sorted(k for k in self.env if SHOP_VARIABLE.fullmatch(k))
        launcher["env_vars"] += [k for k in OPTIONAL_VARIABLES if k in self.env]
        launcher["container_kwargs"]["labels"] = {LABEL: self.label}
        return config

    def start_code_server(self) -> str:
        # The image's gRPC server on a free port of the host's network. DAGSTER_CURRENT_IMAGE
        # makes the location report its image, the one the launcher starts runs in. Values
        # reach the container by name (-e NAME), never on a command line.
        passed = sorted(k for k in self.env if k.startswith(("SHOPIFY_", "DAGSTER_", "AWS_")) and k != "DAGSTER_HOME")
        self.start("code_server", [
            "docker", "run", "--rm", "--name", f"{self.label}-code", "--label", f"{LABEL}={self.label}",
            "--network", "host", *(arg for name in passed for arg in ("-e", name)),
            "-e", f"DAGSTER_CURRENT_IMAGE={self.image}", self.image,
            "dagster", "api", "grpc", "-h", "127.0.0.1", "-p", str(self.grpc_port),
            "-m", "shopify_sync.definitions", "--location-name", self.location])
        return "Started Dagster code server"

    def inspect(self, container_id: str) -> dict[str, Any]:
        out = docker("inspect", container_id)
        assert out.returncode == 0, out.stderr
        found: list[dict[str, Any]] = json.loads(out.stdout)
        return found[0]

    def exit_code(self, container_id: str, timeout: float = 120) -> int:
        """The container's exit code, once it has exited: a run's record says SUCCESS a
        moment before its container's process has finished shutting down."""
        out = docker("wait", container_id, timeout=timeout)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    def container_log(self, container_id: str) -> str:
        out = docker("logs", container_id)
        return out.stdout + out.stderr

    def containers(self) -> list[str]:
        out = docker("ps", "-aq", "--filter", f"label={LABEL}={self.label}")
        return out.stdout.split()

    def stop_all(self) -> None:
        try:
            super().stop_all()
        finally:
            # Run containers stay after their run (auto_remove: false); the code server's
            # `docker run --rm` goes with its client, unless the client was killed first.
            leftover = self.containers()
            if leftover:
                docker("rm", "-f", *leftover, timeout=120)

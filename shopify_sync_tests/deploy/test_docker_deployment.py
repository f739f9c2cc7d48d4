"""The backfill of the Celery deployment test, with the DockerRunLauncher instead.

Real ``dagster-webserver`` and ``dagster-daemon`` with PostgreSQL instance storage and
``deploy/docker/dagster.yaml``: each run of the 3 days x 3 shops backfill starts in its own
container of the code location's image (``deploy/Dockerfile``), on the host's network,
and the code server runs in that image too. The run records must show shops in parallel
and each shop's runs in turn, each run's record must name a container that ran that run
of that image to a clean exit, and the warehouse and measurement objects must equal a
serial in-process run's. Objects go to S3 (moto on loopback): a run container cannot
write the test's directories.

Optional: it skips, saying why and how to get there, where ``docker info`` does not answer
or the image is absent. It does not start ``dockerd`` itself, CI included: that takes
root, a Docker package and minutes of image building (docs/deploy.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._core.storage.tags import DOCKER_IMAGE_TAG
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG

from shopify_sync.config import load_settings
from shopify_sync.launch.queued import QueuedLauncher
from shopify_sync.storage import S3ObjectStore
from shopify_sync_tests.deploy.backfill import (
    assert_shops_in_parallel_each_shop_in_turn,
    launches,
    serial_reference,
    snapshot,
    spans,
)
from shopify_sync_tests.deploy.docker_deployment import IMAGE, DockerDeployment, docker_problem
from shopify_sync_tests.storage.s3_server import make_bucket

RUNS_SECONDS = 1800
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(RUNS_SECONDS + 300)]


@pytest.fixture
def docker_image() -> str:
    problem = docker_problem(IMAGE)
    if problem:
        pytest.skip(f"Docker deployment test: {problem}")
    return IMAGE


@pytest.fixture
def deployment(docker_image: str, tmp_path: Path, deploy_env: dict[str, str],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerDeployment]:
    endpoint = deploy_env["SHOPIFY_SYNC_S3_ENDPOINT_URL"]
    env = {**deploy_env, "SHOPIFY_SYNC_IMAGE": docker_image,
           "SHOPIFY_SYNC_STORAGE_URL": f"s3://{make_bucket(endpoint)}/objects"}
    dep = DockerDeployment(tmp_path / "deploy", env, image=docker_image)
    with dep.running(monkeypatch):
        yield dep


def _objects_to_dir(storage_url: str, endpoint: str, into: Path) -> Path:
    """The measurement objects of an s3:// store, laid out as a file:// store would hold them."""
    bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
    store = S3ObjectStore(bucket, prefix, endpoint_url=endpoint)
    for key in store.list_keys("measurement/"):
        target = into.joinpath(*key.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get_bytes(key))
    return into


def test_backfill_in_docker_run_containers_matches_serial_run(deployment: DockerDeployment, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env = deployment.env
    launcher = QueuedLauncher(load_settings(env), poll_seconds=0.5)
    began = time.monotonic()
    run_ids = [launcher.submit(launch) for launch in launches()]
    # Every run starts a container, the run's process and one process per step, each
    # importing Dagster and the project: seconds on an idle machine, minutes on a crowded one.
    deadline = began + RUNS_SECONDS
    outcomes = [launcher.wait(run_id, timeout=max(deadline - time.monotonic(), 1.0)) for run_id in run_ids]
    docker_s = time.monotonic() - began
    assert all(o.success for o in outcomes), [o.error for o in outcomes] + [deployment.log("daemon")]

    instance = launcher.instance
    assert_shops_in_parallel_each_shop_in_turn(spans(instance, run_ids))
    containers = set()
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        assert run is not None and DOCKER_CONTAINER_ID_TAG in run.tags, f"run {run_id} names no container"
        assert run.tags[DOCKER_IMAGE_TAG] == deployment.image
        container = deployment.inspect(run.tags[DOCKER_CONTAINER_ID_TAG])
        containers.add(container["Id"])
        assert container["Config"]["Labels"]["dagster/run_id"] == run_id
        assert container["Config"]["Image"] == deployment.image
        assert container["Config"]["Cmd"][:3] == ["dagster", "api", "execute_run"], container["Config"]["Cmd"]
        assert container["HostConfig"]["NetworkMode"] == "host"
        assert deployment.exit_code(container["Id"]) == 0, deployment.container_log(container["Id"])[-3000:]
        # The steps ran in there: the container's own output holds this run's step logs
        # (the project's loggers, INFO; Dagster's own events are DEBUG and not printed).
        log = deployment.container_log(container["Id"])
        assert f"shopify_sync_job - {run_id} - shopify_bulk_jsonl - " in log, log[-3000:]
    assert len(containers) == len(run_ids), "a container served two runs"

    began = time.monotonic()
    reference = serial_reference(env, tmp_path, monkeypatch)
    # Figures for docs/benchmarks.md (the machine's load decides them), never asserted.
    print(f"backfill of {len(run_ids)} runs: DockerRunLauncher {docker_s:.1f} s, "
          f"serial in-process {time.monotonic() - began:.1f} s, load average {os.getloadavg()}")
    objects = _objects_to_dir(env["SHOPIFY_SYNC_STORAGE_URL"], env["SHOPIFY_SYNC_S3_ENDPOINT_URL"],
                              tmp_path / "docker_objects")
    distributed = snapshot(env["SHOPIFY_SYNC_DATABASE_URL"], objects)
    assert distributed["objects"], "no measurement objects written"
    assert distributed == reference

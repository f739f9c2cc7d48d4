"""The shipped launcher configurations load in Dagster and render what they promise.

Kubernetes: ``deploy/helm/values.yaml``'s run launcher block, translated as the official
chart does, is validated by Dagster's own instance schema; the ``K8sRunLauncher`` built
from it (dummy kubeconfig, no cluster) renders a run's Job, and the run's
``dagster-k8s/config`` tag (``shopify-sync --launch``) sizes the pod. Docker: the
``DockerRunLauncher`` of ``deploy/docker/dagster.yaml`` loads with its environment; a
real Docker run of it is optional (skips with the reason where no daemon answers).
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

from shopify_sync.launch.plan import SYNC_JOB_NAME, backfill_launch, daily_launch
from shopify_sync.launch.queued import K8S_CONFIG_TAG, launch_tags

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/shopify-sync:0.1.0"

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: dummy, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: dummy, user: {token: dummy}}]
contexts: [{name: dummy, context: {cluster: dummy, user: dummy}}]
current-context: dummy
"""

# The chart's names for the run launcher's keys (helm/dagster/templates/helpers/instance/_run-launcher.tpl).
_CHART_KEYS = {"imagePullPolicy": "image_pull_policy", "jobNamespace": "job_namespace", "labels": "labels",
               "envSecrets": "env_secrets", "envConfigMaps": "env_config_maps", "runK8sConfig": "run_k8s_config"}
_RUN_K8S_KEYS = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                 "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
                 "jobMetadata": "job_metadata"}


def k8s_launcher_config(values: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """The instance's ``run_launcher.config`` the chart writes from ``values`` (unknown keys fail)."""
    chart = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {}
    for key, value in chart.items():
        name = _CHART_KEYS[key]
        if key in {"envSecrets", "envConfigMaps"}:
            value = [item["name"] for item in value]
        elif key == "runK8sConfig":
            value = {_RUN_K8S_KEYS[k]: v for k, v in value.items()}
        config[name] = value
    return {**config, "service_account_name": values["global"]["serviceAccountName"],
            "instance_config_map": "dagster-instance", "dagster_home": "/opt/dagster/dagster_home",
            "postgres_password_secret": values["global"]["postgresqlSecretName"],
            "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}


def _run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    origin = JobPythonOrigin(SYNC_JOB_NAME, RepositoryPythonOrigin(
        # The image's interpreter (deploy/Dockerfile), as the code server there reports it.
        executable_path="/usr/local/bin/python",
        code_pointer=ModuleCodePointer("shopify_sync.definitions", "defs", None),
        container_image=IMAGE))
    run = dg.DagsterRun(job_name=SYNC_JOB_NAME, run_id=str(uuid.uuid4()), tags=tags, job_code_origin=origin)
    return instance.add_run(run)


def _render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: dict[str, str]) -> Any:
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher_yaml = {"module": "dagster_k8s", "class": "K8sRunLauncher",
                     "config": k8s_launcher_config(values, kubeconfig)}
    with dg.instance_for_test(overrides={"run_launcher": launcher_yaml}) as instance:
        launcher = instance.run_launcher
        sent: list[tuple[Any, str]] = []
        # The one call that would reach the cluster: capture the Job instead.
        monkeypatch.setattr(launcher._api_client, "create_namespaced_job_with_retries",  # type: ignore[attr-defined]
                            lambda body, namespace: sent.append((body, namespace)))
        run = _run(instance, tags)
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert len(sent) == 1
    return sent[0]


def test_k8s_values_render_a_run_job_sized_by_the_runs_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launch = backfill_launch("DA", date(2026, 11, 1), date(2026, 11, 30))
    job, namespace = _render(tmp_path, monkeypatch, launch_tags(launch))
    assert namespace == "shopify-sync"
    spec = job.spec.template.spec
    container = spec.containers[0]
    assert container.image == IMAGE
    assert container.args[:5] == ["/usr/local/bin/python", "-m", "dagster", "api", "execute_run"]
    # The run's tag wins over the chart's default pod size.
    assert container.resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert container.resources.limits == {"memory": "2Gi"}
    assert [s.secret_ref.name for s in container.env_from if s.secret_ref] == ["shopify-sync-env"]
    assert spec.service_account_name == "dagster"
    assert job.spec.backoff_limit == 0
    assert spec.termination_grace_period_seconds == 60
    assert job.metadata.labels["app.kubernetes.io/part-of"] == "shopify-sync"


def test_k8s_daily_run_gets_the_small_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tags = launch_tags(daily_launch("DA", date(2026, 11, 30)))
    assert K8S_CONFIG_TAG in tags
    job, _ = _render(tmp_path, monkeypatch, tags)
    resources = job.spec.template.spec.containers[0].resources
    assert resources.requests == {"cpu": "250m", "memory": "512Mi"}


def test_k8s_untagged_run_gets_the_charts_default_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run from the UI or the schedule carries no dagster-k8s/config tag.
    job, _ = _render(tmp_path, monkeypatch, {"shopify_sync/shop": "DA"})
    resources = job.spec.template.spec.containers[0].resources
    assert resources.requests == {"cpu": "500m", "memory": "768Mi"}
    assert resources.limits == {"memory": "2Gi"}


def test_docker_instance_config_loads_the_docker_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DAGSTER_PG_URL": "postgresql+psycopg2://u@127.0.0.1:1/dagster",
                        "DAGSTER_COMPUTE_LOGS_BUCKET": "bucket", "SHOPIFY_SYNC_S3_ENDPOINT_URL": "http://127.0.0.1:9",
                        "SHOPIFY_SYNC_IMAGE": IMAGE}.items():
        monkeypatch.setenv(name, value)
    config = yaml.safe_load((REPO / "deploy" / "docker" / "dagster.yaml").read_text())
    launcher_yaml = config["run_launcher"]
    with dg.instance_for_test(overrides={"run_launcher": launcher_yaml}) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher"
        assert launcher.image == IMAGE  # type: ignore[attr-defined]
        assert launcher.container_kwargs["network_mode"] == "host"  # type: ignore[attr-defined]
    # Apart from the launcher, it is the production instance.
    production = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    for section in ("storage", "run_coordinator", "run_monitoring", "run_retries", "compute_logs", "python_logs"):
        assert config[section] == production[section], section



def test_helm_values_keep_the_production_instance_policies() -> None:
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    production = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == production["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert queued["maxConcurrentRuns"] == production["run_coordinator"]["config"]["max_concurrent_runs"]
    retries = production["run_retries"]
    assert (daemon["runRetries"]["maxRetries"], daemon["runRetries"]["retryOnAssetOrOpFailure"]) == (
        retries["max_retries"], retries["retry_on_asset_or_op_failure"])
    assert daemon["runMonitoring"]["maxRuntimeSeconds"] == production["run_monitoring"]["max_runtime_seconds"]
    assert values["pythonLogs"]["managedPythonLoggers"] == production["python_logs"]["managed_python_loggers"]

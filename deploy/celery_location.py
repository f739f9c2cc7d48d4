"""The deployment's code location with the Celery executor (docs/deploy.md).

The asset code does not change: this location serves the project's definitions
(``shopify_sync.defs.build_definitions``) with ``dagster_celery``'s executor, so each
step of a run is a Celery task that any worker on the broker can take. The executor is
deployment configuration, like the instance's storage; the quick start's location
(``shopify_sync.definitions``) keeps Dagster's default executor.

Broker and result backend come from the environment the workers share:
``DAGSTER_CELERY_BROKER_URL`` / ``DAGSTER_CELERY_BACKEND_URL`` (e.g. ``redis://host:6379/0``),
and ``DAGSTER_CELERY_KEY_PREFIX`` keeps two deployments on one Redis apart. The workers
read the same variables (``deploy/celery/dagster_celery_config.py``).
"""

import os

import dagster as dg
from dagster_celery import celery_executor

from shopify_sync.defs import build_definitions


def celery_app_settings() -> dict[str, object]:
    """Celery settings shared with the workers (dagster_celery_config.py reads the same)."""
    prefix = os.environ.get("DAGSTER_CELERY_KEY_PREFIX", "")
    transport = {"global_keyprefix": prefix} if prefix else {}
    return {
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        # A step is one sync phase of one shop; the next waits for a free worker.
        "worker_prefetch_multiplier": 1,
    }


@dg.definitions
def defs() -> dg.Definitions:
    executor = celery_executor.configured(
        {
            "broker": {"env": "DAGSTER_CELERY_BROKER_URL"},
            "backend": {"env": "DAGSTER_CELERY_BACKEND_URL"},
            "config_source": celery_app_settings(),
        },
        name="celery",
    )
    return dg.Definitions.merge(build_definitions(), dg.Definitions(executor=executor))

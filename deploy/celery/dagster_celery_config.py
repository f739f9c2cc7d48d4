"""Celery settings of a deployment worker (docs/deploy.md).

``dagster_celery.app`` imports a module named ``dagster_celery_config`` when one is on
the path; a worker started with ``PYTHONPATH=deploy/celery`` therefore listens on the
broker the executor of ``deploy/celery_location.py`` submits to:

    celery -A dagster_celery.app worker -Q dagster --pool solo -n w1@%h
"""

import os

broker_url = os.environ["DAGSTER_CELERY_BROKER_URL"]
result_backend = os.environ["DAGSTER_CELERY_BACKEND_URL"]
_prefix = os.environ.get("DAGSTER_CELERY_KEY_PREFIX", "")
broker_transport_options = {"global_keyprefix": _prefix} if _prefix else {}
result_backend_transport_options = dict(broker_transport_options)
# One step at a time per worker process: a worker's pid is the process that runs the step,
# so the process the operator (or a test) stops is the one doing the work.
worker_prefetch_multiplier = 1
worker_concurrency = 1
task_default_queue = "dagster"

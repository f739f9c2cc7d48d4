"""Dagster definitions of shopify_sync, one module per concern (see docs/architecture.md).

``shopify_sync.definitions`` is the code location's entry point; ``build_definitions``
is what it calls, and what tests and the CLI call with explicit settings.
"""

from __future__ import annotations

import warnings

import dagster as dg

from shopify_sync.config import ConfigError, Settings, load_settings
from shopify_sync.defs.assets import build_assets
from shopify_sync.defs.catalog_checks import CATALOG_CHECKS
from shopify_sync.defs.checks import CHECKS
from shopify_sync.defs.jobs import build_sync_job
from shopify_sync.defs.partitions import build_partitions_def
from shopify_sync.defs.resources import build_resources
from shopify_sync.defs.retry import build_relaunch_sensor
from shopify_sync.defs.schedules import build_daily_schedule
from shopify_sync.defs.sensors import build_sensors


def _settings_from_environment() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        # One clear line in the UI / CLI instead of a chain through Dagster's loader.
        raise ConfigError(exc.variable, str(exc).split(": ", 1)[1]) from None


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The whole code location for ``settings`` (default: from the environment).

    Cheap and side-effect free: no network, no files, no database at load time.
    """
    # Beta labels of deliberately used features (e.g. the freshness policy) are noise in
    # every UI load and CLI run.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    if settings is None:
        settings = _settings_from_environment()
    partitions_def = build_partitions_def(settings)
    job = build_sync_job(partitions_def)
    return dg.Definitions(
        assets=build_assets(partitions_def),
        asset_checks=[*CHECKS, *CATALOG_CHECKS],
        jobs=[job],
        schedules=[build_daily_schedule(job, settings.shop_codes)],
        sensors=[*build_sensors(settings), build_relaunch_sensor(job)],
        resources=build_resources(settings),
    )

"""Dagster definitions of shopify_sync, one module per concern (see docs/architecture.md)."""

from __future__ import annotations

import warnings

import dagster as dg

from shopify_sync.config import ConfigError, Settings, load_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The whole code location for ``settings`` (default: from the environment).

    Cheap and side-effect free: no network, no files, no database at load time.
    """
    from shopify_sync.defs.assets import build_assets
    from shopify_sync.defs.checks import build_checks
    from shopify_sync.defs.jobs import build_sync_job
    from shopify_sync.defs.partitions import build_partitions_def
    from shopify_sync.defs.resources import build_resources
    from shopify_sync.defs.schedules import build_daily_schedule

    # BackfillPolicy is a deliberate choice (one bulk operation per shop per backfill
    # run); its "beta" label is noise in every UI load and CLI run.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            # One clear line in the UI / CLI instead of a chain through Dagster's loader.
            raise ConfigError(exc.variable, str(exc).split(": ", 1)[1]) from None
    partitions_def = build_partitions_def(settings)
    job = build_sync_job(partitions_def)
    sensors: list[dg.SensorDefinition] = []
    try:
        from shopify_sync.defs import sensors as sensors_module
    except ImportError:
        sensors_module = None  # type: ignore[assignment]
    if sensors_module is not None:
        if hasattr(sensors_module, "build_sensors"):
            sensors = list(sensors_module.build_sensors(settings))
        else:
            sensors = [v for v in vars(sensors_module).values() if isinstance(v, dg.SensorDefinition)]
    return dg.Definitions(
        assets=build_assets(partitions_def),
        asset_checks=build_checks(partitions_def),
        jobs=[job],
        schedules=[build_daily_schedule(job, settings.shop_codes)],
        sensors=sensors,
        resources=build_resources(settings),
    )

"""The token scan that closes every fault scenario (issue 14, "Prove it"): the secrets a
scenario used must appear nowhere an operator or another tool can read them afterwards.

Looked at: every file under the given roots (logs, telemetry and measurement objects, raw
archives, the Dagster home with its run and event-log storage, a SQLite warehouse) as raw
bytes, every file and object *name*, every ``sync_job`` row, and the Dagster instance's event
log read through its API (which covers a storage that is not a file, e.g. PostgreSQL).
A hit is reported by secret *label* and place, never with the secret itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._serdes import serialize_value


def _hits_in(text: bytes, where: str, secrets: Mapping[str, str]) -> list[str]:
    return [f"{label} in {where}" for label, value in secrets.items() if value.encode() in text]


def scan_files(roots: Iterable[Path], secrets: Mapping[str, str]) -> list[str]:
    hits: list[str] = []
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            # The place is named by its parent: the name itself holds the secret.
            hits += _hits_in(path.name.encode(), f"a name in {path.parent}", secrets)
            if path.is_file():
                hits += _hits_in(path.read_bytes(), str(path), secrets)
    return hits


def scan_sync_jobs(url: str, secrets: Mapping[str, str]) -> list[str]:
    from shopify_sync.warehouse.tables import sync_job

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sync_job)).mappings().all()
    finally:
        engine.dispose()
    return [hit for row in rows for hit in _hits_in(repr(dict(row)).encode(), f"sync_job {row['job_id']}", secrets)]


def scan_event_logs(instance: dg.DagsterInstance, secrets: Mapping[str, str]) -> list[str]:
    hits: list[str] = []
    for run in instance.get_runs():
        hits += _hits_in(serialize_value(run).encode(), f"run record {run.run_id}", secrets)
        for entry in instance.all_logs(run.run_id):
            hits += _hits_in(serialize_value(entry).encode(), f"event log of run {run.run_id}", secrets)
    return hits


def scan_for_secrets(
    secrets: Mapping[str, str], *, roots: Iterable[Path] = (), database_url: str | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[str]:
    """Every place a secret value was found (empty: none); ``secrets`` maps a label to a value."""
    secrets = {label: value for label, value in secrets.items() if value}
    hits = scan_files(roots, secrets)
    if database_url is not None:
        hits += scan_sync_jobs(database_url, secrets)
    if instance is not None:
        hits += scan_event_logs(instance, secrets)
    return hits

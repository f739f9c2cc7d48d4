"""The project's vocabulary: every enumerated word of SPEC §3/§6 and of ``sync_job``, typed once.

A leaf module (it imports nothing of the package), so the warehouse, the sync steps,
telemetry, the Dagster definitions, the CLI and the API all spell a status, a step or
a mode the same way. Each is a ``StrEnum``: the values are the public strings SPEC
names (telemetry fields, ``sync_job`` columns, object keys), and compare equal to them.
"""

from __future__ import annotations

import enum


class Mode(enum.StrEnum):
    """``job_type`` in telemetry, ``sync_job`` and the raw archive key (SPEC §6)."""

    DAILY_INCREMENTAL = "DAILY_INCREMENTAL"
    FULL_BACKFILL_EXECUTE = "FULL_BACKFILL_EXECUTE"
    REPLAY = "REPLAY"
    # The product catalog's own bulk job (``productVariants``) inside a daily run: its
    # sync_job rows, raw archive folder and telemetry records. Never a run's mode.
    CATALOG = "CATALOG"


# The modes a run can have (run tags); CATALOG is a job type inside a daily run.
RUN_MODES: tuple[Mode, ...] = (Mode.DAILY_INCREMENTAL, Mode.FULL_BACKFILL_EXECUTE, Mode.REPLAY)


class Initiator(enum.StrEnum):
    """Who started a run: the schedule, a Dagster backfill, or a person (UI, CLI, API)."""

    CRON = "cron"
    USER = "user"
    BACKFILL = "backfill"


class Step(enum.StrEnum):
    """The sync telemetry steps of SPEC §3, in the order a run passes them."""

    INITIATED = "initiated"
    REQUESTED = "requested"
    POLLING = "polling"
    DOWNLOADING = "downloading"
    UPSERTING = "upserting"
    TRANSFORMING = "transforming"
    COMPLETED = "completed"
    FAILED = "failed"


# A run's telemetry ends with one of these, written last (SPEC §6).
TERMINAL_STEPS: frozenset[Step] = frozenset({Step.COMPLETED, Step.FAILED})


class StepStatus(enum.StrEnum):
    """``status`` of one telemetry record."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobStatus(enum.StrEnum):
    """``sync_job.status``: where a bulk job stands; the hand-off between steps and runs."""

    CREATED = "created"
    POLLING = "polling"
    DOWNLOADED = "downloaded"
    RUNNING = "running"
    UPSERTING = "upserting"
    LOADED = "loaded"
    COMPLETED = "completed"
    FAILED = "failed"


# A job in one of these states is finished: nothing resumes it.
DONE_JOB_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})


class ChangeKind(enum.StrEnum):
    """What happened to an order in a sync: one COMMERCE_TELEMETRY event each (SPEC §6)."""

    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"

"""The CLI's instance keeps its SQLite event log's engines: same events, readable by any instance."""

# No `from __future__ import annotations`: Dagster reads the asset's context annotation as an object.
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from shopify_sync.launch.instance_storage import (
    KeptEngineSqliteEventLogStorage,
    keep_event_log_engines,
    release_event_log_connections,
)

REPO = Path(__file__).resolve().parents[2]


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
def thing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"partition": context.partition_key})


def test_kept_engines_write_what_a_plain_instance_reads(tmp_path: Path) -> None:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    job = dg.Definitions(assets=[thing]).resolve_implicit_global_asset_job_def()
    run_ids = []
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        keep_event_log_engines(inst)
        storage = inst.event_log_storage
        assert isinstance(storage, KeptEngineSqliteEventLogStorage)
        for i in range(12):
            result = job.execute_in_process(instance=inst, partition_key="ab"[i % 2])
            assert result.success
            run_ids.append(result.run_id)
        assert 1 <= len(storage._engines) <= 8  # the index shard and the latest runs, not one per run
        assert list(tmp_path.glob("history/runs/*.db-wal"))  # open connections: write-ahead logs
        release_event_log_connections(inst)  # what the launcher does after every run
        assert not list(tmp_path.glob("history/runs/*.db-wal"))  # checkpointed and deleted on close
    with dg.DagsterInstance.from_config(str(tmp_path)) as plain:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        for run_id in run_ids:
            types = [e.dagster_event.event_type_value for e in plain.all_logs(run_id) if e.dagster_event]
            assert "ASSET_MATERIALIZATION" in types and types[-1] == "PIPELINE_SUCCESS"  # the run's success, by its stored name
        records = plain.fetch_materializations(dg.AssetKey("thing"), limit=100).records
        assert len(records) == 12
        assert plain.get_materialized_partitions(dg.AssetKey("thing")) == {"a", "b"}


def test_other_event_logs_are_left_alone() -> None:
    with dg.DagsterInstance.ephemeral() as inst:
        before = type(inst.event_log_storage)
        keep_event_log_engines(inst)
        assert type(inst.event_log_storage) is before


def test_open_connections_let_another_instance_read_and_wipe_closes_them(tmp_path: Path) -> None:
    """The kept connections stay open between events (WAL, synchronous=NORMAL): another
    instance reads every committed event meanwhile, and a wipe first closes them."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    job = dg.Definitions(assets=[thing]).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst, \
            dg.DagsterInstance.from_config(str(tmp_path)) as reader:
        keep_event_log_engines(inst)
        storage = inst.event_log_storage
        assert isinstance(storage, KeptEngineSqliteEventLogStorage)
        for key in "ab":
            result = job.execute_in_process(instance=inst, partition_key=key)
            assert result.success
            logged = [e.dagster_event.event_type_value for e in reader.all_logs(result.run_id) if e.dagster_event]
            assert logged[-1] == "PIPELINE_SUCCESS"
        assert reader.get_materialized_partitions(dg.AssetKey("thing")) == {"a", "b"}
        with storage.index_connection() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        storage.wipe()
        assert set(storage._engines) <= {"index"}  # the index is emptied, not deleted: it may reopen
        assert not list((tmp_path / "history" / "runs").glob("*-*.db"))  # the run shards are gone
        assert reader.get_materialized_partitions(dg.AssetKey("thing")) == set()


def test_schema_facts_are_asked_once_and_the_event_tags_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster asks on every asset event whether the tags table exists (a new engine each
    time) and whether the asset key table has its index columns (a reflection): the kept
    storage asks the file once, and the partition tags still reach the tags table."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    asked: list[str] = []
    plain_has_table = SqliteEventLogStorage.has_table

    def counting_has_table(self: SqliteEventLogStorage, table_name: str) -> bool:
        asked.append(table_name)
        return plain_has_table(self, table_name)

    monkeypatch.setattr(SqliteEventLogStorage, "has_table", counting_has_table)
    job = dg.Definitions(assets=[thing]).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        keep_event_log_engines(inst)
        for key in "abab":
            assert job.execute_in_process(instance=inst, partition_key=key).success
        assert asked and len(asked) == len(set(asked))  # each table looked up once, not per event
        with inst.event_log_storage.index_connection() as conn:
            tagged = conn.exec_driver_sql("SELECT COUNT(*) FROM asset_event_tags").scalar()
        assert tagged is not None and tagged >= 4  # a partition tag per materialization
        assert inst.get_materialized_partitions(dg.AssetKey("thing")) == {"a", "b"}
    monkeypatch.undo()
    with dg.DagsterInstance.from_config(str(tmp_path)) as plain:
        records = plain.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("thing"), asset_partitions=["a"]), limit=10).records
        assert len(records) == 2

"""The days pending restatement: ``measurement_dirty`` (SPEC §5 "Restatement").

The ingest marks, in each chunk's own transaction, the (shop, day) whose counted lines
the chunk changed (``mark_days``); the metrics step of the same run, or of the next run
of the shop after a crash, reads them (``pending``), rewrites the stored measurements
they affect, and only then clears them (``clear``). Every marking takes a new token, and
``clear`` deletes a row only while it still holds the token that was read: a day marked
again by a concurrent ingest in between stays pending for the next run.
``measurement_sales`` runs before ``measurement_performance`` in a run, so it records
which token it has restated (``sales_restated``); the performance step restates sales
itself for a day whose token moved on since.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from shopify_sync.warehouse.tables import measurement_dirty

_T = measurement_dirty


@dataclass(frozen=True)
class DirtyDay:
    """One pending day as read: the token a clear must still find."""

    day: date
    token: str
    sales_token: str | None

    @property
    def sales_restated(self) -> bool:
        return self.sales_token == self.token


def _upsert(dialect: str) -> sa.Insert:
    if dialect == "postgresql":
        pg = pg_insert(_T)
        return pg.on_conflict_do_update(index_elements=[_T.c.shop, _T.c.day], set_={"token": pg.excluded.token})
    if dialect == "sqlite":
        lite = sqlite_insert(_T)
        return lite.on_conflict_do_update(index_elements=[_T.c.shop, _T.c.day], set_={"token": lite.excluded.token})
    if dialect in {"mysql", "mariadb"}:
        my = mysql_insert(_T)
        return my.on_duplicate_key_update(token=my.inserted.token)
    raise ValueError(f"unsupported database backend {dialect!r} for measurement_dirty")


def mark_days(conn: Connection, shop: str, days: Iterable[date]) -> int:
    """Mark ``days`` of ``shop`` pending, inside the caller's (the chunk's) transaction."""
    wanted = sorted(set(days))  # one lock order for every writer: no deadlock between two ingests
    if not wanted:
        return 0
    token = uuid.uuid4().hex
    conn.execute(_upsert(conn.dialect.name), [{"shop": shop, "day": d, "token": token} for d in wanted])
    return len(wanted)


def pending(engine: Engine, shop: str) -> list[DirtyDay]:
    """The shop's pending days, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_T.c.day, _T.c.token, _T.c.sales_token).where(_T.c.shop == shop)
                            .order_by(_T.c.day)).all()
    return [DirtyDay(r.day, r.token, r.sales_token) for r in rows]


def sales_restated(engine: Engine, shop: str, rows: Sequence[DirtyDay]) -> None:
    """measurement_sales has restated these markings (only where the token is unchanged)."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(_T.update().where(_T.c.shop == shop, _T.c.day == sa.bindparam("d"),
                                       _T.c.token == sa.bindparam("t")).values(sales_token=sa.bindparam("t")),
                     [{"d": r.day, "t": r.token} for r in rows])


def clear(engine: Engine, shop: str, rows: Sequence[DirtyDay]) -> None:
    """Forget restated markings; a day marked again since it was read stays pending."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(_T.delete().where(_T.c.shop == shop, _T.c.day == sa.bindparam("d"),
                                       _T.c.token == sa.bindparam("t")),
                     [{"d": r.day, "t": r.token} for r in rows])

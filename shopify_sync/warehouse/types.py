"""Column types shared by the warehouse tables and their migrations.

``Money`` keeps amounts exact at rest on every backend: NUMERIC(20,4) on MySQL /
PostgreSQL, and on SQLite (which has no decimal type and would store NUMERIC as
REAL) a scaled integer (amount x 10^4), so ``SUM`` stays exact in SQL and values
read back as ``Decimal``. ``UtcDateTime`` stores naive UTC with microseconds
(MySQL's plain DATETIME would silently drop them).
"""

from __future__ import annotations

import operator
from datetime import datetime
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.operators import OperatorType

from shopify_sync.timeutil import naive_utc

MONEY_SCALE = 4
MONEY_FACTOR = 10**MONEY_SCALE
# Digits before the point that every backend holds alike: SQLite's scaled BIGINT stops at
# 922,337,203,685,477.5807 (NUMERIC(20,4) would take 16), so amounts stay under 10^14.
MONEY_INTEGER_DIGITS = 14
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def to_money(value: Decimal | int | str | float) -> Decimal:
    """Parse an amount exactly (``"12.34"`` → ``Decimal("12.3400")``); floats are refused."""
    if isinstance(value, float):
        raise TypeError(f"money must not be a float (got {value!r}); pass a Decimal or a decimal string")
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    if d.adjusted() >= MONEY_INTEGER_DIGITS:
        raise ValueError(f"amount {value!r} has more than {MONEY_INTEGER_DIGITS} digits before the decimal point")
    q = d.quantize(_QUANTUM)
    if q != d:
        raise ValueError(f"amount {value!r} has more than {MONEY_SCALE} decimal places")
    return q


class Money(sa.types.TypeDecorator[Decimal]):
    """Exact decimal money: NUMERIC(20,4), or scaled BIGINT on SQLite. Reads back as ``Decimal``.

    Aggregates keep the type (``sa.func.sum(Money column)`` reads back as Decimal);
    for arithmetic such as ``quantity * price`` wrap with ``sa.type_coerce(expr, Money())``
    so the SQLite scaling is undone (an integer times a scaled integer stays scaled).
    """

    impl = sa.Numeric(20, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Decimal] | sa.types.TypeEngine[int]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | str | float | None, dialect: Dialect) -> Decimal | int | None:
        if value is None:
            return None
        d = to_money(value)
        if dialect.name == "sqlite":
            return int(d.scaleb(MONEY_SCALE))
        return d

    def process_result_value(self, value: Decimal | float | int | str | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            if isinstance(value, float):
                # Storage is always integer; a float only comes from an expression with a
                # fractional factor (price * 1.5), rounded here to the money scale.
                return Decimal(repr(value)).scaleb(-MONEY_SCALE).quantize(_QUANTUM)
            return Decimal(int(value)).scaleb(-MONEY_SCALE).quantize(_QUANTUM)
        return Decimal(value).quantize(_QUANTUM)

    def coerce_compared_value(
        self, op: OperatorType | None, value: object
    ) -> sa.types.TypeEngine[Decimal] | sa.types.TypeEngine[int]:
        # Literals compared with / added to money must go through the same scaling,
        # but a factor (price * 2) must not be scaled itself.
        if op in (operator.mul, operator.truediv, operator.floordiv):
            return sa.Integer() if isinstance(value, int) else sa.Numeric(asdecimal=True)
        return self


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Naive-UTC timestamp with microseconds; aware inputs are converted to UTC."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[datetime]:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=False))

    def process_bind_param(self, value: object, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value


# SQLAlchemy's SQLite DATETIME storage format; the bulk paths write this text directly.
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

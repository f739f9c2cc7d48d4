"""Configuration from the environment (SPEC §2).

Every variable is read here and nowhere else, so a bad value fails fast with one
message naming the variable (``ConfigError``) instead of a stack trace from deep
inside a run. Reading the environment is not I/O: this module is safe to call at
definitions-load time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError

DEFAULT_API_VERSION = "2026-10"
DEFAULT_SHOPS = "DEMO"
DEFAULT_START_DATE = "2026-01-01"
# Picked by bench/ingest.py (figures in docs/benchmarks.md): speed did not depend on the
# chunk size, while the client's peak RSS grows with it (two chunks are in flight), and a
# chunk must commit well under SPEC's 20 s.
DEFAULT_CHUNK_ROWS = 20_000

# Also the width of the warehouse's `shop` columns (tables.py): a longer code is refused
# here rather than at the first write.
SHOP_CODE_MAX_LENGTH = 32
_SHOP_CODE = re.compile(rf"^[A-Z0-9_]{{1,{SHOP_CODE_MAX_LENGTH}}}$")
_MYSHOPIFY = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_API_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$|^unstable$")
EMULATOR = "emulator"


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""

    def __init__(self, variable: str, message: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {message}")


@dataclass(frozen=True)
class ShopConfig:
    """One storefront. ``token`` is a secret: it is excluded from repr."""

    code: str
    store: str  # "emulator", "name.myshopify.com" or a base URL
    token: str | None = field(default=None, repr=False)

    @property
    def is_emulator(self) -> bool:
        return self.store == EMULATOR

    def base_url(self) -> str:
        """Base URL without trailing slash; ``emulator`` has none until started."""
        if self.is_emulator:
            raise ValueError("the emulator's base URL is only known once it is started")
        if self.store.startswith(("http://", "https://")):
            return self.store.rstrip("/")
        return f"https://{self.store}"


@dataclass(frozen=True)
class Settings:
    shops: tuple[ShopConfig, ...]
    api_version: str
    poll_interval_seconds: float
    poll_max_attempts: int
    home: Path
    database_url: str = field(repr=False)
    storage_url: str
    s3_endpoint_url: str | None
    watermark_floor_days: int
    lookback_minutes: int
    chunk_rows: int
    api_token: str | None = field(repr=False)
    start_date: str
    dagster_graphql_url: str
    # Days between automatic full catalog refreshes (the only way deleted variants are
    # noticed); 0: only when asked (``sync --full-catalog``) or when there is no catalog watermark.
    catalog_full_refresh_days: int = 7

    @property
    def shop_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.shops)

    def shop(self, code: str) -> ShopConfig:
        for s in self.shops:
            if s.code == code:
                return s
        raise ConfigError("SHOPIFY_SHOPS", f"unknown shop code {code!r}; configured: {', '.join(self.shop_codes)}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(name, f"must be >= 0, got {value}")
    return value


def parse_shop_codes(raw: str) -> tuple[str, ...]:
    codes = tuple(c.strip() for c in raw.split(",") if c.strip())
    if not codes:
        raise ConfigError("SHOPIFY_SHOPS", "no shop code given")
    for c in codes:
        if not _SHOP_CODE.match(c):
            raise ConfigError("SHOPIFY_SHOPS", f"shop code {c!r} must match [A-Z0-9_]+, at most {SHOP_CODE_MAX_LENGTH} characters")
    if len(set(codes)) != len(codes):
        raise ConfigError("SHOPIFY_SHOPS", f"duplicate shop codes in {raw!r}")
    return codes


def _shop(env: Mapping[str, str], code: str) -> ShopConfig:
    store_var, token_var = f"SHOPIFY_{code}_STORE", f"SHOPIFY_{code}_TOKEN"
    store = env.get(store_var, "").strip() or (EMULATOR if code == "DEMO" else "")
    if not store:
        raise ConfigError(store_var, f"not set (shop {code} is listed in SHOPIFY_SHOPS)")
    if store != EMULATOR:
        if store.startswith(("http://", "https://")):
            parsed = urlparse(store)
            if not parsed.hostname:
                raise ConfigError(store_var, f"malformed URL {store!r}")
        elif not _MYSHOPIFY.match(store):
            raise ConfigError(
                store_var, f"must be name.myshopify.com, an http(s):// base URL or 'emulator'; got {store!r}"
            )
    token = env.get(token_var, "").strip() or None
    if token is None and store != EMULATOR:
        raise ConfigError(token_var, f"not set (Admin API access token for shop {code})")
    return ShopConfig(code=code, store=store, token=token)


def _validate_db_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError("SHOPIFY_SYNC_DATABASE_URL", "malformed SQLAlchemy URL") from None
    if parsed.get_backend_name() not in {"sqlite", "mysql", "mariadb", "postgresql"}:
        raise ConfigError(
            "SHOPIFY_SYNC_DATABASE_URL",
            f"unsupported backend {parsed.get_backend_name()!r} (sqlite, mysql+pymysql, postgresql+psycopg)",
        )
    # Load the dialect and import its DBAPI module (no connection): a driver that is not
    # installed must fail here, in one line, not at the first step of a run.
    try:
        dialect = parsed.get_dialect()
        if dialect.is_async:
            raise ConfigError("SHOPIFY_SYNC_DATABASE_URL", f"driver {parsed.drivername!r} is async; use a sync driver "
                                                           "(mysql+pymysql, postgresql+psycopg)")
        dialect.import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise ConfigError(
            "SHOPIFY_SYNC_DATABASE_URL",
            f"driver {parsed.drivername!r} is not installed (sqlite, mysql+pymysql, postgresql+psycopg)",
        ) from None


def _validate_storage_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        # `file://relative/objs` parses as host "relative", path "/objs": the same rule as open_store.
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ConfigError("SHOPIFY_SYNC_STORAGE_URL", f"file URL must be absolute (file:///abs/path), got {url!r}")
    elif parsed.scheme == "s3":
        if "@" in parsed.netloc or ":" in parsed.netloc:
            # Never echo the URL here: it may carry credentials.
            raise ConfigError("SHOPIFY_SYNC_STORAGE_URL", "s3 URL must not embed credentials or a port "
                                                          "(use AWS_* variables and SHOPIFY_SYNC_S3_ENDPOINT_URL)")
        if not parsed.netloc:
            raise ConfigError("SHOPIFY_SYNC_STORAGE_URL", f"s3 URL needs a bucket (s3://bucket/prefix), got {url!r}")
    else:
        raise ConfigError("SHOPIFY_SYNC_STORAGE_URL", f"must be file:///abs/path or s3://bucket/prefix, got {url!r}")


def _is_iso_day(raw: str) -> bool:
    # The regex first: Python's fromisoformat also takes 20261201 and 2026-W48-1.
    if not _ISO_DAY.fullmatch(raw):
        return False
    try:
        date.fromisoformat(raw)
    except ValueError:
        return False
    return True


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every SPEC §2 variable. Raises ``ConfigError``."""
    env = os.environ if environ is None else environ
    codes = parse_shop_codes(env.get("SHOPIFY_SHOPS", "") or DEFAULT_SHOPS)
    shops = tuple(_shop(env, c) for c in codes)

    api_version = env.get("SHOPIFY_API_VERSION", "").strip() or DEFAULT_API_VERSION
    if not _API_VERSION.match(api_version):
        raise ConfigError("SHOPIFY_API_VERSION", f"must look like 2026-10, got {api_version!r}")

    home = Path(env.get("SHOPIFY_SYNC_HOME", "").strip() or "./.shopify_sync").expanduser().absolute()
    database_url = env.get("SHOPIFY_SYNC_DATABASE_URL", "").strip() or f"sqlite:///{home}/warehouse.db"
    _validate_db_url(database_url)
    storage_url = env.get("SHOPIFY_SYNC_STORAGE_URL", "").strip() or f"file://{home}/objects"
    _validate_storage_url(storage_url)
    s3_endpoint = env.get("SHOPIFY_SYNC_S3_ENDPOINT_URL", "").strip() or None
    if s3_endpoint and not urlparse(s3_endpoint).hostname:
        raise ConfigError("SHOPIFY_SYNC_S3_ENDPOINT_URL", f"malformed URL {s3_endpoint!r}")

    start_date = env.get("SHOPIFY_SYNC_START_DATE", "").strip() or DEFAULT_START_DATE
    if not _is_iso_day(start_date):
        raise ConfigError("SHOPIFY_SYNC_START_DATE", f"must be a date YYYY-MM-DD, got {start_date!r}")

    return Settings(
        shops=shops,
        api_version=api_version,
        poll_interval_seconds=_float(env, "SHOPIFY_POLL_INTERVAL_SECONDS", 16.0),
        poll_max_attempts=_int(env, "SHOPIFY_POLL_MAX_ATTEMPTS", 128),
        home=home,
        database_url=database_url,
        storage_url=storage_url,
        s3_endpoint_url=s3_endpoint,
        watermark_floor_days=_int(env, "SHOPIFY_SYNC_WATERMARK_FLOOR_DAYS", 128),
        lookback_minutes=_int(env, "SHOPIFY_SYNC_LOOKBACK_MINUTES", 15, minimum=0),
        chunk_rows=_int(env, "SHOPIFY_SYNC_CHUNK_ROWS", DEFAULT_CHUNK_ROWS),
        api_token=env.get("SHOPIFY_SYNC_API_TOKEN", "").strip() or None,
        start_date=start_date,
        dagster_graphql_url=env.get("SHOPIFY_SYNC_DAGSTER_URL", "").strip() or "http://127.0.0.1:3000",
        catalog_full_refresh_days=_int(env, "SHOPIFY_SYNC_CATALOG_FULL_REFRESH_DAYS", 7, minimum=0),
    )

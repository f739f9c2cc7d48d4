"""Configuration fails fast with one message naming the variable (SPEC §2)."""

import importlib.util

import pytest

from shopify_sync.config import ConfigError, load_settings


def test_defaults_are_the_demo_setup(tmp_path):
    s = load_settings({"SHOPIFY_SYNC_HOME": str(tmp_path)})
    assert s.shop_codes == ("DEMO",)
    assert s.shops[0].is_emulator
    assert s.database_url == f"sqlite:///{tmp_path}/warehouse.db"
    assert s.storage_url == f"file://{tmp_path}/objects"
    assert (s.poll_interval_seconds, s.poll_max_attempts) == (16.0, 128)
    assert (s.watermark_floor_days, s.lookback_minutes) == (128, 15)
    assert s.api_version >= "2026-01"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SHOPIFY_SHOPS": "da"}, "SHOPIFY_SHOPS"),
        ({"SHOPIFY_SHOPS": "A" * 33}, "SHOPIFY_SHOPS"),  # wider than the warehouse's shop columns
        ({"SHOPIFY_SHOPS": "DA"}, "SHOPIFY_DA_STORE"),
        ({"SHOPIFY_SHOPS": "DA", "SHOPIFY_DA_STORE": "x.myshopify.com"}, "SHOPIFY_DA_TOKEN"),
        ({"SHOPIFY_SHOPS": "DA", "SHOPIFY_DA_STORE": "not a url", "SHOPIFY_DA_TOKEN": "t"}, "SHOPIFY_DA_STORE"),
        ({"SHOPIFY_SYNC_DATABASE_URL": "nonsense"}, "SHOPIFY_SYNC_DATABASE_URL"),
        ({"SHOPIFY_SYNC_STORAGE_URL": "ftp://x"}, "SHOPIFY_SYNC_STORAGE_URL"),
        # host "relative", path "/objs" to urlparse: must be file:///abs/path
        ({"SHOPIFY_SYNC_STORAGE_URL": "file://relative/objs"}, "SHOPIFY_SYNC_STORAGE_URL"),
        ({"SHOPIFY_SYNC_STORAGE_URL": "s3://key:secret@bucket/p"}, "SHOPIFY_SYNC_STORAGE_URL"),
        ({"SHOPIFY_SYNC_DATABASE_URL": "mysql+nodriver://u@h/d"}, "SHOPIFY_SYNC_DATABASE_URL"),
        ({"SHOPIFY_SYNC_DATABASE_URL": "postgresql+asyncpg://u@h/d"}, "SHOPIFY_SYNC_DATABASE_URL"),
        ({"SHOPIFY_SYNC_START_DATE": "2026-02-30"}, "SHOPIFY_SYNC_START_DATE"),
        ({"SHOPIFY_POLL_MAX_ATTEMPTS": "many"}, "SHOPIFY_POLL_MAX_ATTEMPTS"),
        ({"SHOPIFY_API_VERSION": "latest"}, "SHOPIFY_API_VERSION"),
    ],
)
def test_bad_configuration_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable)


def test_token_is_not_in_repr():
    s = load_settings({"SHOPIFY_SHOPS": "DA", "SHOPIFY_DA_STORE": "x.myshopify.com", "SHOPIFY_DA_TOKEN": "shpat_SECRET"})
    assert "shpat_SECRET" not in repr(s)
    assert s.shop("DA").token == "shpat_SECRET"


def test_a_database_driver_that_is_not_installed_fails_at_load(tmp_path):
    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("MySQLdb is installed here")
    url = "mysql+mysqldb://u:hunter2@127.0.0.1:1/d"
    with pytest.raises(ConfigError) as err:
        load_settings({"SHOPIFY_SYNC_HOME": str(tmp_path), "SHOPIFY_SYNC_DATABASE_URL": url})
    assert err.value.variable == "SHOPIFY_SYNC_DATABASE_URL"
    assert "'mysql+mysqldb' is not installed" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_the_supported_drivers_and_file_urls_pass(tmp_path):
    for db in ("mysql+pymysql://u@h/d", "postgresql+psycopg://u@h/d", "sqlite:///x.db"):
        for store in ("file:///abs/objs", "file://localhost/abs/objs", "s3://bucket/prefix"):
            s = load_settings({"SHOPIFY_SYNC_DATABASE_URL": db, "SHOPIFY_SYNC_STORAGE_URL": store})
            assert (s.database_url, s.storage_url) == (db, store)

"""Configuration fails fast with one message naming the variable (SPEC §2)."""

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

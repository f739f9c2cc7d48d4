"""ShopifyBulkResource: clients per shop from the environment, tokens never Dagster config."""


import os

import dagster as dg
import pytest

from shopify_sync.config import ConfigError
from shopify_sync.defs.resources import ShopifyResource
from shopify_sync.emulator import demo_base_url, demo_token
from shopify_sync.shopify.errors import InvalidToken
from shopify_sync.shopify.options import ClientOptions
from shopify_sync.shopify.resource import ShopifyBulkResource
from shopify_sync_tests.shopify.conftest import TOKEN, empty_window_query, window_query


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith(("SHOPIFY_", "SHOPIFY_SYNC_")):
            monkeypatch.delenv(key)
    return monkeypatch


def test_client_for_reads_store_token_and_poll_settings_at_run_time(clean_env, server) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "DE,NL")
    clean_env.setenv("SHOPIFY_DE_STORE", server.shop_base_url("DE"))
    clean_env.setenv("SHOPIFY_DE_TOKEN", TOKEN)
    clean_env.setenv("SHOPIFY_NL_STORE", "nl-shop.myshopify.com")
    clean_env.setenv("SHOPIFY_NL_TOKEN", "shpat_nl")
    clean_env.setenv("SHOPIFY_API_VERSION", "2026-01")
    clean_env.setenv("SHOPIFY_POLL_INTERVAL_SECONDS", "0.01")
    clean_env.setenv("SHOPIFY_POLL_MAX_ATTEMPTS", "7")
    resource = ShopifyBulkResource()
    with resource.client_for("DE") as client:
        assert (client.api_version, client.options.poll_interval_seconds, client.options.poll_max_attempts) == (
            "2026-01", 0.01, 7)
        op = client.poll(client.submit(window_query()).id)
        assert op.status == "COMPLETED"
    assert {e.shop for e in server.emulator.log_of("run_query")} == {"DE"}
    with resource.client_for("NL") as nl:
        assert nl.base_url == "https://nl-shop.myshopify.com"
        assert nl.endpoint == "https://nl-shop.myshopify.com/admin/api/2026-01/graphql.json"


def test_explicit_fields_override_the_environment(clean_env, server) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "DE")
    clean_env.setenv("SHOPIFY_DE_STORE", server.shop_base_url("DE"))
    clean_env.setenv("SHOPIFY_DE_TOKEN", TOKEN)
    resource = ShopifyBulkResource(api_version="2025-10", poll_interval_seconds=2.5, poll_max_attempts=3)
    with resource.client_for("DE") as client:
        assert (client.api_version, client.options.poll_interval_seconds, client.options.poll_max_attempts) == (
            "2025-10", 2.5, 3)


def test_emulator_store_uses_the_demo_singleton(clean_env) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "DEMO,EU")
    clean_env.setenv("SHOPIFY_EU_STORE", "emulator")
    resource = ShopifyResource(poll_interval_seconds=0.0)
    with resource.client_for("DEMO") as demo, resource.client_for("EU") as eu:
        assert demo.base_url == demo_base_url("DEMO")
        assert eu.base_url == demo_base_url("EU") and eu.base_url.endswith("/shops/EU")
        op = eu.poll(eu.submit(empty_window_query()).id)
        assert op.status == "COMPLETED"
        assert demo_token() not in repr(eu)


def test_the_shopify_package_alone_refuses_an_emulator_store(clean_env) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "EU")
    clean_env.setenv("SHOPIFY_EU_STORE", "emulator")
    with pytest.raises(ConfigError, match="emulator") as exc:
        ShopifyBulkResource().client_for("EU")
    assert exc.value.variable == "SHOPIFY_EU_STORE"


@pytest.mark.parametrize(
    ("env", "shop", "variable"),
    [
        ({"SHOPIFY_SHOPS": "DE", "SHOPIFY_DE_STORE": "de.myshopify.com", "SHOPIFY_DE_TOKEN": "x"}, "FR",
         "SHOPIFY_SHOPS"),
        ({"SHOPIFY_SHOPS": "DE", "SHOPIFY_DE_STORE": "de.myshopify.com"}, "DE", "SHOPIFY_DE_TOKEN"),
        ({"SHOPIFY_SHOPS": "DE", "SHOPIFY_DE_STORE": "not a host", "SHOPIFY_DE_TOKEN": "x"}, "DE",
         "SHOPIFY_DE_STORE"),
        ({"SHOPIFY_SHOPS": "DE", "SHOPIFY_DE_STORE": "de.myshopify.com", "SHOPIFY_DE_TOKEN": "x",
          "SHOPIFY_API_VERSION": "latest"}, "DE", "SHOPIFY_API_VERSION"),
        ({"SHOPIFY_SHOPS": "DE", "SHOPIFY_DE_STORE": "de.myshopify.com", "SHOPIFY_DE_TOKEN": "x",
          "SHOPIFY_POLL_MAX_ATTEMPTS": "0"}, "DE", "SHOPIFY_POLL_MAX_ATTEMPTS"),
    ],
)
def test_bad_configuration_names_the_variable(clean_env, env, shop, variable) -> None:
    for k, v in env.items():
        clean_env.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        ShopifyBulkResource().client_for(shop)
    assert exc.value.variable == variable


def test_token_is_not_resource_config() -> None:
    for resource in (ShopifyBulkResource, ShopifyResource):
        assert set(resource.model_fields) == {"api_version", "poll_interval_seconds", "poll_max_attempts"}


def test_resource_in_a_dagster_run_keeps_the_token_out_of_events(clean_env, server, tmp_path) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "DE")
    clean_env.setenv("SHOPIFY_DE_STORE", server.shop_base_url("DE"))
    clean_env.setenv("SHOPIFY_DE_TOKEN", TOKEN)
    clean_env.setenv("SHOPIFY_POLL_INTERVAL_SECONDS", "0")
    server.emulator.faults.add("http_5xx", times=1, status=503)  # a retry warning goes to context.log

    @dg.asset
    def bulk_file(context: dg.AssetExecutionContext, shopify: ShopifyBulkResource) -> dg.MaterializeResult:
        with shopify.client_for("DE", log=context.log) as client:
            result = client.run(window_query(), tmp_path / "de.jsonl", on_submitted=lambda op: None)
        return dg.MaterializeResult(metadata={"operation_id": result.operation.id, "bytes": result.bytes,
                                              "client": repr(client)})

    instance = dg.DagsterInstance.ephemeral()
    outcome = dg.materialize([bulk_file], resources={"shopify": ShopifyBulkResource(api_version="2026-10")},
                             instance=instance)
    assert outcome.success
    records = instance.all_logs(outcome.run_id)
    text = "\n".join(f"{r.user_message} {r.dagster_event!r}" for r in records)
    assert "retrying" in text  # the client's warning reached Dagster's log
    assert "BulkOperation/" in text
    assert TOKEN not in text


def test_client_options_pass_through(clean_env, server) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "DE")
    clean_env.setenv("SHOPIFY_DE_STORE", server.shop_base_url("DE"))
    clean_env.setenv("SHOPIFY_DE_TOKEN", TOKEN)
    options = ClientOptions(in_progress_max_wait=7200, max_resubmits=1, poll_interval_seconds=99)
    with ShopifyBulkResource(poll_interval_seconds=0.5).client_for("DE", options=options) as client:
        assert (client.options.in_progress_max_wait, client.options.max_resubmits) == (7200, 1)
        assert client.options.poll_interval_seconds == 0.5  # the resource's, not the options


def test_wrong_token_error_names_the_shop_variable(clean_env, server) -> None:
    clean_env.setenv("SHOPIFY_SHOPS", "DE")
    clean_env.setenv("SHOPIFY_DE_STORE", server.shop_base_url("DE"))
    clean_env.setenv("SHOPIFY_DE_TOKEN", "shpat_wrong_one_42")
    with ShopifyBulkResource().client_for("DE") as client:
        with pytest.raises(InvalidToken, match="SHOPIFY_DE_TOKEN") as exc:
            client.submit(window_query())
    assert "shpat_wrong_one_42" not in str(exc.value)

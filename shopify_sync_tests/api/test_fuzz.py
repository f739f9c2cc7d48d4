"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Every generated request, valid or not, must get a documented status, never a 5xx,
and a body that conforms to the documented schema (errors included).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shopify_sync.api.app import create_app
from shopify_sync_tests.api.conftest import API_TOKEN, Synced

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, ignored_auth]
# Launching runs needs a Dagster webserver; test_launch.py covers that endpoint for real.
OPERATIONS = ["GET /orders", "GET /orders/{order_id}", "GET /analytics/commerce/overview",
              "GET /analytics/pipelines", "GET /api/ingest/runs", "GET /analytics/commerce/daily",
              "GET /analytics/products/top"]
EXAMPLES = 20


@pytest.fixture(scope="module")
def api_schema(synced_sqlite: Synced) -> schemathesis.BaseSchema:
    """The app over a warehouse filled by a real sync, so 200 bodies carry real orders."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(synced_sqlite.settings))


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS) | {"POST /api/performance-metrics/sync"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms_to_its_openapi(api_schema: schemathesis.BaseSchema, label: str,
                                           mode: GenerationMode) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {API_TOKEN}"}, checks=CHECKS)

    check()

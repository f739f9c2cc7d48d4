"""Token check, rate limiting and every injectable fault, over real HTTP."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.shopify.schema import load_schema
from shopify_sync_tests.emulator.helpers import RUN, SIMPLE, Api


@pytest.fixture
def api(emulator_server):
    client = Api(emulator_server)
    yield client
    client.close()


def test_wrong_or_missing_token_is_401_with_shopifys_body(api, emulator_server):
    expected = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    r = api.post(RUN, {"q": SIMPLE}, token="shpat_wrong")
    assert r.status_code == 401 and r.json() == expected
    r = api.http.post(api.url, json={"query": "{ shop { name } }"})
    assert r.status_code == 401 and r.json() == expected
    assert emulator_server.emulator.operations() == []
    log = emulator_server.emulator.request_log
    assert [e.status_code for e in log] == [401, 401]
    assert all("shpat" not in repr(e) for e in log)  # the token never reaches the log


def test_custom_token():
    with EmulatorServer(EmulatorConfig(token="shpat_custom")) as srv:
        api = Api(srv)
        assert api.post("{ shop { name } }").status_code == 200
        assert api.post("{ shop { name } }", token="shpat_emulator").status_code == 401
        assert "shpat_custom" not in repr(srv.emulator.config)
        api.close()


def test_unknown_path_and_bad_version_are_404(emulator_server):
    http = httpx.Client()
    h = {"X-Shopify-Access-Token": emulator_server.token}
    assert http.post(f"{emulator_server.base_url}/admin/graphql.json", json={}, headers=h).status_code == 404
    r = http.post(f"{emulator_server.base_url}/admin/api/latest-ish/graphql.json", json={"query": "{ shop { name } }"},
                  headers=h)
    assert r.status_code == 404
    http.close()


def test_leaky_bucket_throttles_then_recovers():
    load_schema("2026-10")  # loaded up front: a slow first request would refill the bucket
    # a slow refill (4/s) so that a loaded machine cannot refill the bucket between requests
    with EmulatorServer(EmulatorConfig(bucket_size=25, restore_rate=4)) as srv:
        api = Api(srv)
        bodies = [api.gql(RUN, {"q": SIMPLE}) for _ in range(3)]  # 10 points each from a 25-point bucket
        assert "data" in bodies[0] and "data" in bodies[1]
        throttled = bodies[2]
        assert "data" not in throttled
        assert throttled["errors"] == [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
        cost = throttled["extensions"]["cost"]
        assert cost["actualQueryCost"] is None and cost["requestedQueryCost"] == 10
        assert cost["throttleStatus"]["currentlyAvailable"] < 10
        assert cost["throttleStatus"]["maximumAvailable"] == 25 and cost["throttleStatus"]["restoreRate"] == 4
        # numbers as in the captured THROTTLED body ("maximumAvailable":1000.0, "currentlyAvailable":666)
        assert type(cost["throttleStatus"]["maximumAvailable"]) is float
        assert type(cost["throttleStatus"]["restoreRate"]) is float
        assert type(cost["throttleStatus"]["currentlyAvailable"]) is int
        time.sleep(1.6)  # 4 points/s refill: room for another 10-point mutation
        assert "data" in api.gql(RUN, {"q": SIMPLE})
        api.close()


def test_fault_throttled_body(api, emulator_server):
    emulator_server.emulator.faults.add("throttled", times=1)
    assert api.gql("{ shop { name } }")["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "data" in api.gql("{ shop { name } }")


def test_fault_http_429_with_retry_after(api, emulator_server):
    emulator_server.emulator.faults.add("http_429", times=2, retry_after=3)
    for _ in range(2):
        r = api.post(RUN, {"q": SIMPLE})
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert api.post(RUN, {"q": SIMPLE}).status_code == 200
    assert [e.status_code for e in emulator_server.emulator.log_of("run_query")] == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_fault_http_5xx(api, emulator_server, status):
    emulator_server.emulator.faults.add("http_5xx", times=1, status=status, on=["poll"])
    op_id = api.submit(SIMPLE)  # not a poll: unaffected
    assert api.post("query($id: ID!) { node(id: $id) { id } }", {"id": op_id}).status_code == status
    assert api.poll(op_id, via="node")["status"] == "COMPLETED"


def test_fault_operation_in_progress(api, emulator_server):
    emulator_server.emulator.faults.add("operation_in_progress", times=1,
                                        blocking_ids=["gid://shopify/BulkOperation/1", "gid://shopify/BulkOperation/2"])
    payload = api.run(SIMPLE)
    assert payload["bulkOperation"] is None
    assert payload["userErrors"] == [{"field": None, "code": "OPERATION_IN_PROGRESS", "message":
                                      "A bulk query operation for this app and shop is already in progress: "
                                      "gid://shopify/BulkOperation/1, gid://shopify/BulkOperation/2."}]
    assert api.run(SIMPLE)["userErrors"] == []


@pytest.mark.parametrize("code", ["ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"])
def test_fault_bulk_failed_with_each_error_code(api, emulator_server, code):
    emulator_server.emulator.faults.add("bulk_failed", times=1, error_code=code)
    op = api.poll(api.submit(SIMPLE))
    assert op["status"] == "FAILED" and op["errorCode"] == code
    assert op["url"] is None and op["partialDataUrl"] is None and op["completedAt"] is None
    assert api.poll(api.submit(SIMPLE))["status"] == "COMPLETED"  # one-shot


def test_fault_bulk_failed_with_partial_data(api, emulator_server):
    emulator_server.emulator.faults.add("bulk_failed", error_code="INTERNAL_SERVER_ERROR", partial=True)
    op = api.poll(api.submit(SIMPLE))
    assert op["status"] == "FAILED" and op["partialDataUrl"]
    r = api.download(op["partialDataUrl"])
    assert r.status_code == 200
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert 0 < len(lines) == int(op["objectCount"])
    assert len(r.content) < 200 * 300  # half a result of 200 orders, not all of it


def test_bulk_failed_rejects_unknown_code(emulator_server):
    with pytest.raises(ValueError, match="error_code"):
        emulator_server.emulator.faults.add("bulk_failed", error_code="NOPE")
    with pytest.raises(ValueError, match="unknown fault kind"):
        emulator_server.emulator.faults.add("gremlins")


def test_fault_slow_completion(api, emulator_server):
    emulator_server.emulator.faults.add("slow_completion", seconds=600)
    op_id = api.submit(SIMPLE)
    assert api.poll(op_id)["status"] in {"CREATED", "RUNNING"}
    emulator_server.emulator.advance(601)
    assert api.poll(op_id)["status"] == "COMPLETED"


def _completed_url(api: Api) -> tuple[str, dict]:
    op = api.poll(api.submit(SIMPLE))
    return op["url"], op


def test_result_host_rejects_the_shopify_token(api, emulator_server):
    url, _ = _completed_url(api)
    assert urlsplit(url).netloc != urlsplit(emulator_server.base_url).netloc  # another origin
    r = api.download(url, **{"X-Shopify-Access-Token": emulator_server.token})
    assert r.status_code == 403
    assert emulator_server.token not in r.text
    r = api.download(url)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/jsonl"
    assert int(r.headers["Content-Length"]) == len(r.content)


def test_tampered_signature_is_rejected(api):
    url, _ = _completed_url(api)
    r = api.download(url.replace("Signature=", "Signature=00"))
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text


def test_fault_download_500_then_ok(api, emulator_server):
    emulator_server.emulator.faults.add("download_500", times=1)
    url, _ = _completed_url(api)
    assert api.download(url).status_code == 500
    assert api.download(url).status_code == 200


def test_fault_download_expired(api, emulator_server):
    emulator_server.emulator.faults.add("download_expired", times=1)
    url, _ = _completed_url(api)
    r = api.download(url)
    assert r.status_code == 403 and "Request has expired" in r.text


def test_fault_download_truncated_closes_early(api, emulator_server):
    emulator_server.emulator.faults.add("download_truncated", times=1, fraction=0.25)
    url, op = _completed_url(api)
    with pytest.raises(httpx.RemoteProtocolError):
        api.download(url)
    # raw socket view: Content-Length promises the full size, fewer bytes arrive
    emulator_server.emulator.faults.add("download_truncated", times=1, fraction=0.25)
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"Content-Length: {op['fileSize']}".encode() in head
    assert 0 < len(body) < int(op["fileSize"])
    assert api.download(url).status_code == 200


def test_fault_large_result_is_exact_valid_jsonl_and_streamed(api, emulator_server):
    size = 5_000_003
    emulator_server.emulator.faults.add("large_result", size_bytes=size)
    op = api.poll(api.submit(SIMPLE))
    assert op["fileSize"] == str(size)
    count = 0
    roots = 0
    tail = b""
    with api.http.stream("GET", op["url"]) as r:
        assert r.headers["Content-Length"] == str(size)
        total = 0
        for chunk in r.iter_bytes():
            total += len(chunk)
            buf = tail + chunk
            *lines, tail = buf.split(b"\n")
            for line in lines:
                obj = json.loads(line)
                count += 1
                roots += "__parentId" not in obj
    assert total == size and tail == b""
    assert op["objectCount"] == str(count) and op["rootObjectCount"] == str(roots)


@pytest.mark.parametrize("large", [False, True])
def test_result_host_honours_byte_ranges(api, emulator_server, large):
    if large:
        emulator_server.emulator.faults.add("large_result", size_bytes=3 * 1024 * 1024 + 777)
    url, op = _completed_url(api)
    full = api.download(url).content
    size = len(full)
    assert str(size) == op["fileSize"]
    ranges = [(0, 9), (size // 3, None), (size - 5, None), (size // 2, size // 2 + 70_000)]
    if large:  # across the synthetic result's repeated blocks
        ranges.append((1024 * 1024 + 3, 2 * 1024 * 1024 + 10))
    for start, end in ranges:
        header = f"bytes={start}-" + ("" if end is None else str(end))
        r = api.download(url, Range=header)
        stop = size if end is None else min(size, end + 1)
        assert r.status_code == 206, header
        assert r.content == full[start:stop]
        assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
    assert api.download(url, Range=f"bytes={size}-").status_code == 416


@pytest.mark.parametrize("defect", ["truncated_line", "not_json", "orphan_child"])
def test_fault_malformed_result_damages_one_middle_line_and_keeps_the_counts(api, emulator_server, defect):
    clean = api.poll(api.submit(SIMPLE))
    good = api.download(clean["url"]).content.decode().splitlines()
    emulator_server.emulator.faults.add("malformed_result", defect=defect)
    op = api.poll(api.submit(SIMPLE))
    body = api.download(op["url"]).content
    lines = body.decode().splitlines()
    assert op["objectCount"] == clean["objectCount"] == str(len(lines)) and op["fileSize"] == str(len(body))
    changed = [i for i, (a, b) in enumerate(zip(lines, good, strict=True)) if a != b]
    assert len(changed) == 1 and changed[0] >= len(lines) // 2
    bad = lines[changed[0]]
    if defect == "orphan_child":
        parent = json.loads(bad)["__parentId"]
        assert parent not in {json.loads(line)["id"] for line in lines}
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(bad)


def test_fault_object_count_mismatch_serves_fewer_lines_than_counted(api, emulator_server):
    emulator_server.emulator.faults.add("object_count_mismatch", missing=2)
    op = api.poll(api.submit(SIMPLE))
    body = api.download(op["url"]).content
    assert int(op["objectCount"]) == len(body.decode().splitlines()) + 2 and op["fileSize"] == str(len(body))
    with pytest.raises(ValueError, match="malformed_result defect"):
        emulator_server.emulator.faults.add("malformed_result", defect="gremlins")

"""The HTTP server: shop routing, concurrency, serve() as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync_tests.emulator.helpers import SIMPLE, Api

ROOT = Path(__file__).resolve().parents[2]


def test_shop_routing_by_path_prefix(emulator_server):
    assert emulator_server.shop_base_url("DEMO") == emulator_server.base_url
    assert emulator_server.shop_base_url("DA") == f"{emulator_server.base_url}/shops/DA"
    for shop, currency in (("DEMO", "EUR"), ("DA", "DKK"), ("INT", "USD")):
        api = Api(emulator_server, shop=shop)
        _, lines, _ = api.result_lines("{ orders { edges { node { id currencyCode } } } }")
        assert {x["currencyCode"] for x in lines} == {currency}
        api.close()
    assert [e.shop for e in emulator_server.emulator.log_of("run_query")] == ["DEMO", "DA", "INT"]


def test_concurrent_requests_are_served_in_parallel():
    with EmulatorServer(EmulatorConfig(orders_per_shop=50)) as srv:
        shops = [f"S{k}" for k in range(8)]

        def run(shop: str) -> int:
            api = Api(srv, shop=shop)
            try:
                op, lines, _ = api.result_lines(SIMPLE)
                return len(lines)
            finally:
                api.close()

        with ThreadPoolExecutor(8) as pool:
            counts = list(pool.map(run, shops))
        assert all(c > 50 for c in counts)
        assert len(srv.emulator.log_of("download")) == 8


def test_stop_releases_the_port():
    srv = EmulatorServer(EmulatorConfig()).start()
    url = srv.base_url
    srv.stop()
    try:
        httpx.post(f"{url}/admin/api/2026-10/graphql.json", json={}, timeout=2)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("server still answering after stop()")


def test_serve_prints_its_base_url_and_answers(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from shopify_sync.emulator import serve; serve(port=0, orders=5, token='shpat_t')"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        # as under `nohup`: SIGTERM must still stop it, cleanly
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("shopify-emulator-")], \
            "the emulator keeps its result files in a temp dir"
        r = httpx.post(f"{base}/shops/DA/admin/api/2026-10/graphql.json", json={"query": "{ shop { name } }"},
                       headers={"X-Shopify-Access-Token": "shpat_t"}, timeout=30)
        assert r.status_code == 200 and r.json()["data"]["shop"]["name"] == "Emulator DA"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert proc.returncode == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("shopify-emulator-")]


def test_a_given_emulator_outlives_its_server_and_keeps_state():
    from shopify_sync.emulator import Emulator

    em = Emulator(EmulatorConfig(orders_per_shop=10))
    with EmulatorServer(em) as first:
        api = Api(first)
        op_id = api.submit(SIMPLE)
        r = api.post("{ shop { name } }")
        assert r.headers["X-Shopify-API-Version"] == "2026-10"
        api.close()
    with EmulatorServer(em) as second:  # same state behind a new port: the operation is still there
        api = Api(second)
        op = api.poll(op_id)
        assert op["status"] == "COMPLETED"
        assert api.download(op["url"]).status_code == 200
        api.close()
    em.close()

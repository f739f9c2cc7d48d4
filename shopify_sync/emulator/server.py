"""Real HTTP for the emulator: the Admin API origin and the result-file origin.

Two ``ThreadingHTTPServer`` listeners on loopback (free ports) in daemon threads: one
serves ``/admin/api/<version>/graphql.json`` (shop DEMO) and
``/shops/<CODE>/admin/api/<version>/graphql.json``; the other, a different origin like
Shopify's pre-signed storage host, serves the result files. Bodies are streamed in
64 KiB chunks with a Content-Length, so a 300 MB result costs no memory.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from shopify_sync.emulator.app import Emulator
from shopify_sync.emulator.response import Response
from shopify_sync.emulator.state import EmulatorConfig

_GRAPHQL = re.compile(r"^(?:/shops/(?P<shop>[A-Z0-9_]+))?/admin/api/(?P<version>[^/]+)/graphql\.json$")
MAX_BODY = 1 << 20  # GraphQL request bodies; Shopify caps bulk query text far below this


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK
    # delay every keep-alive request (docs/benchmarks.md, "Emulator and client")
    disable_nagle_algorithm = True
    server: _Server
    server_version = "ShopifyEmulator/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: tests read request_log
        return

    def _safe(self, produce: Callable[[], Response]) -> None:
        try:
            resp = produce()
        except Exception as exc:  # noqa: BLE001 - an emulator bug must answer, not drop the socket
            resp = Response.json(500, {"errors": f"emulator error: {type(exc).__name__}: {exc}"})
        self._send(resp)

    def _send(self, resp: Response) -> None:
        try:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            if resp.stream is not None:
                length, chunks = resp.stream
                self.send_header("Content-Length", str(length))
                self.end_headers()
                sent = 0
                for chunk in chunks:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                if sent < length:
                    # truncated on purpose: close without sending the rest
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)
                return
            body = resp.body or b""
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _ApiHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        m = _GRAPHQL.match(url.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(Response.json(413, {"errors": "Request entity too large"}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        if not m:
            self._send(Response.json(404, {"errors": "Not Found"}))
            return
        shop = m.group("shop") or "DEMO"
        headers = dict(self.headers.items())
        self._safe(lambda: self.server.emulator.handle_graphql(shop, m.group("version"), headers, body))

    def do_GET(self) -> None:  # noqa: N802
        self._send(Response.json(404, {"errors": "Not Found"}))


class _FilesHandler(_Handler):
    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        headers = dict(self.headers.items())
        self._safe(lambda: self.server.emulator.handle_download(url.path, url.query, headers))


class EmulatorServer:
    """``with EmulatorServer(EmulatorConfig(...)) as srv: srv.base_url, srv.emulator``."""

    def __init__(self, config_or_emulator: EmulatorConfig | Emulator | None = None, *, host: str | None = None,
                 port: int = 0) -> None:
        self._owns_emulator = not isinstance(config_or_emulator, Emulator)
        if isinstance(config_or_emulator, Emulator):
            self.emulator = config_or_emulator
        else:
            self.emulator = Emulator(config_or_emulator or EmulatorConfig())
        self.host = host or self.emulator.config.host
        self._port = port
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> EmulatorServer:
        if self._servers:
            return self
        for handler, port in ((_ApiHandler, self._port), (_FilesHandler, 0)):
            srv = _Server((self.host, port), handler)
            srv.emulator = self.emulator
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                 name=f"shopify-emulator-{srv.server_address[1]}", daemon=True)
            t.start()
            self._servers.append(srv)
            self._threads.append(t)
        host = self.host if ":" not in self.host else f"[{self.host}]"
        self.emulator.base_url = f"http://{host}:{self._servers[0].server_address[1]}"
        self.emulator.files_base_url = f"http://{host}:{self._servers[1].server_address[1]}"
        return self

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def files_base_url(self) -> str:
        return self.emulator.files_base_url

    @property
    def token(self) -> str:
        return self.emulator.config.token

    def shop_base_url(self, code: str) -> str:
        return self.emulator.shop_base_url(code)

    def graphql_url(self, shop: str = "DEMO", version: str = "2026-10") -> str:
        return f"{self.emulator.shop_base_url(shop)}/admin/api/{version}/graphql.json"

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers.clear()
        self._threads.clear()
        if self._owns_emulator:
            self.emulator.close()  # result files live in a temp dir

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


_demo_lock = threading.Lock()
_demo: EmulatorServer | None = None


def demo_emulator() -> EmulatorServer:
    """The process-wide emulator behind ``SHOPIFY_<CODE>_STORE=emulator`` (started lazily)."""
    global _demo
    with _demo_lock:
        if _demo is None:
            _demo = EmulatorServer(EmulatorConfig()).start()
        return _demo


def demo_base_url(code: str = "DEMO") -> str:
    return demo_emulator().shop_base_url(code)


def demo_token() -> str:
    return demo_emulator().token


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(host: str = "127.0.0.1", port: int = 0, token: str = "shpat_emulator", orders: int = 200,
          seed: int = 7) -> None:
    """Serve until interrupted; prints the base URL (``shopify-sync emulator``)."""
    server = EmulatorServer(EmulatorConfig(seed=seed, orders_per_shop=orders, token=token, host=host),
                            host=host, port=port).start()
    print(server.base_url, flush=True)
    print(f"  shop DEMO: {server.base_url}/admin/api/<version>/graphql.json; shop CODE: "
          f"{server.base_url}/shops/CODE/admin/api/<version>/graphql.json", file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a supervisor, `kill`) stops like Ctrl-C, so the result files' temp dir is
        # removed; also when the process was started with SIGTERM ignored (`nohup`).
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

"""Shared pieces of the browser tests: the system Chromium through Playwright, screenshots.

The tests drive Debian's ``chromium`` (``.ci/run`` installs it) with Playwright's
``executable_path``; Playwright never downloads a browser. Without Chromium or the
``playwright`` package the tests skip and say why. Every step's screenshot goes to
``docs/screenshots/`` (``SHOPIFY_SYNC_SCREENSHOTS`` overrides), where the README's
pictures come from.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("SHOPIFY_SYNC_SCREENSHOTS", REPO / "docs" / "screenshots"))
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
VIEWPORT = {"width": 1366, "height": 900}  # a laptop screen


def chromium_path() -> str:
    """The system Chromium, or a skip naming what is missing."""
    wanted = os.environ.get("SHOPIFY_SYNC_CHROMIUM")
    for candidate in ([wanted] if wanted else []) + list(CHROMIUM_CANDIDATES):
        if candidate and (Path(candidate).is_file() or shutil.which(candidate)):
            return candidate
    pytest.skip("no system Chromium (apt-get install chromium; .ci/run does it): browser tests need one")


@contextmanager
def browser_page(console_errors: list[str]) -> Iterator[Any]:
    """A fresh page in headless system Chromium; console errors and page errors are collected."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = chromium_path()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
            page = context.new_page()
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
            try:
                yield page
            except BaseException:
                # What the page showed when the test failed: beside the log, not in the docs.
                page.screenshot(path=str(Path(tempfile.gettempdir()) / "shopify_sync-browser-failure.png"))
                raise
        finally:
            browser.close()


def shot(page: Any, name: str) -> Path:
    """Save ``docs/screenshots/<name>.png`` (the viewport: what a person sees)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port

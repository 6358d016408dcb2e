"""What the browser tests share: headless Chromium (Debian's `chromium`, driven by Playwright)
and a stand-in app on the loopback interface for the browser to sign in to."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - playwright is in requirements-dev.in
    async_playwright = None


@pytest.fixture
def browser_available() -> None:
    """Skips the test (before any costly setup that depends on this) without a browser."""
    if async_playwright is None:
        pytest.skip("playwright is not installed (it is in requirements-dev.in: run `make install`)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (`make browser` installs it, as root)")


@pytest.fixture
async def browser_page(browser_available):
    """A fresh browser profile: (context, page)."""
    profile = tempfile.mkdtemp(prefix="tessera-chromium-")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, locale="en-US",
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            yield context, page
        finally:
            await context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def app_server():
    """An app's web server on loopback: (holder, origin). Put the app in `holder`; `/login`
    sends the browser to its `authorization_url()`, `/callback` is recorded in its `callbacks`."""
    holder: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            app = holder[0]
            if self.path.startswith("/login"):
                self.send_response(302)
                self.send_header("Location", app.authorization_url())
                self.end_headers()
                return
            if self.path.startswith("/callback"):  # not the browser's /favicon.ico
                app.callbacks.append(app.origin + self.path)
            body = b"<!DOCTYPE html><title>App</title><h1>Signed in</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="browser-test-app", daemon=True).start()
    try:
        yield holder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

"""What the browser tests share: Debian's Chromium (or a skip), the app served on a loopback
port in a thread, and pages that record JavaScript errors and requests to other hosts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from listenloop.bench.screenshots import CHROMIUM, LAUNCH_ARGS
from listenloop.bench.serve import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and timings (git-ignored)


def require_browser() -> Any:
    """Playwright's sync API, or skip the calling module with the reason."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"browser tests need Debian's Chromium at {CHROMIUM} (.ci/chromium)", allow_module_level=True
        )
    return pytest.importorskip("playwright.sync_api", reason="browser tests need Playwright for Python")


def launch(playwright: Any, *extra: str) -> Any:
    """Headless Debian Chromium with the flags a closed network needs (no browser download)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*LAUNCH_ARGS, *extra])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Watched:
    """A page whose JavaScript errors and requests to other hosts are recorded (`check` fails on them).

    `on_request` (optional) also sees every request, e.g. to count the dashboard's polls.
    """

    def __init__(
        self,
        browser: Any,
        base: str,
        viewport: dict[str, int],
        on_request: Callable[[str], None] | None = None,
        **context_options: Any,
    ) -> None:
        self.context = browser.new_context(viewport=viewport, **context_options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20000)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        host = urlsplit(base).netloc
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

        def seen(request: Any) -> None:
            url = request.url
            if url.startswith(("blob:", "data:")):
                return
            if urlsplit(url).netloc != host:
                self.foreign.append(url)
            if on_request is not None:
                on_request(url)

        self.context.on("request", seen)

    def check(self) -> None:
        """Fail on any JavaScript error or request to another host."""
        assert not self.errors, f"JavaScript errors: {self.errors}"
        assert not self.foreign, f"requests to other hosts: {self.foreign}"

    def close(self) -> None:
        self.context.close()

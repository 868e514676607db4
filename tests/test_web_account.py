"""The account page in a real browser: change the password (a common one is refused with the
server's reason), which signs out the other sessions, and "Sign out everywhere else"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from listenloop.server import create_app
from web_support import Watched, launch, require_browser, serving

sync_api = require_browser()


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    app = create_app(f"sqlite:///{tmp_path / 'listenloop.db'}", tmp_path / "data", learning=False)
    with serving(app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


def _token(base: str, password: str) -> httpx.Response:
    return httpx.post(f"{base}/api/v1/token", data={"username": "dora", "password": password}, timeout=30)


def _shows(page: Any, element: str, text: str) -> None:
    """Wait until #element's text contains `text` (a function: the page's CSP forbids eval)."""
    page.wait_for_function(
        "([id, text]) => document.getElementById(id).textContent.includes(text)", arg=[element, text]
    )


def test_change_password_and_end_other_sessions(base: str, browser: Any) -> None:
    r = httpx.post(f"{base}/api/v1/users", json={"username": "dora", "password": "dora-password"}, timeout=30)
    assert r.status_code == 201, r.text
    other = {"Authorization": f"Bearer {_token(base, 'dora-password').json()['access_token']}"}
    w = Watched(browser, base, {"width": 1280, "height": 900})
    try:
        page = w.page
        page.goto(base + "/")
        page.wait_for_selector("html[data-app=ready]")
        page.fill("#signin-username", "dora")
        page.fill("#signin-password", "dora-password")
        page.press("#signin-password", "Enter")  # the pages' sign-in sends X-Requested-With
        page.wait_for_selector("#nav:not([hidden])")
        page.click("a[href='#/account']")
        page.wait_for_selector("#password-form")

        page.fill("#current-password", "dora-password")
        page.fill("#new-password", "password1")
        page.click("#password-form button[type=submit]")
        _shows(page, "password-error", "common")

        page.fill("#new-password", "violet-harbour-42")
        page.click("#password-form button[type=submit]")
        _shows(page, "password-done", "1 other session")
        me = httpx.get(f"{base}/api/v1/users/me", headers=other, timeout=30)
        assert me.status_code == 401  # the other session ended
        assert _token(base, "violet-harbour-42").status_code == 200  # ... and opened another one

        page.click("#end-sessions")
        _shows(page, "sessions-done", "1 other session")
        assert page.is_visible("#nav")  # this session stays signed in
        assert "dora" in page.inner_text("#who")
        w.check()
    finally:
        w.close()

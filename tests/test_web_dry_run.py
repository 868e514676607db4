"""The dashboard's dry-run card in a real browser (Playwright driving Debian's Chromium): the owner
starts a dry run with its button, the card shows it queued, the learning service runs it (inline
here), and the card's poll shows the server's verdict in words and the per-strategy table.
Any JavaScript error or request to another host fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_support import tone_wav, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.learning.service import LearningService
from listenloop.server import create_app
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()

N_PER_CLASS = 15


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Any, Path]]:
    app = create_app(f"sqlite:///{tmp_path / 'listenloop.db'}", tmp_path / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with serving(app) as base:
        yield base, app, tmp_path / "data"


def test_owner_starts_a_dry_run_and_reads_its_verdict(live: tuple[str, Any, Path]) -> None:
    base, app, data = live
    token = httpx.post(
        f"{base}/api/v1/token", data={"username": "owner", "password": "owner-pass-1"}, timeout=60
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    body = {"name": "Tones", "task_type": "classification", "classes": ["low", "high"]}
    body |= {"feature_set": "mfcc", "learner": "logreg", "retrain_every": 4}
    pid = httpx.post(f"{base}/api/v1/projects", headers=headers, json=body, timeout=60).json()["id"]
    files = {f"low_{i:02d}.wav": tone_wav(200 + 10 * i, i) for i in range(N_PER_CLASS)}
    files |= {f"high_{i:02d}.wav": tone_wav(2000 + 100 * i, 100 + i) for i in range(N_PER_CLASS)}
    labels = "file,label\n" + "".join(f"{name},{name.split('_')[0]}\n" for name in files)
    r = httpx.post(
        f"{base}/api/v1/projects/{pid}/clips",
        headers=headers,
        files={"archive": ("a.zip", zip_of(files)), "labels": ("labels.csv", labels.encode())},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, base, {"width": 1280, "height": 900})
        page = watched.page
        try:
            page.goto(base + "/")
            page.wait_for_selector("html[data-app=ready]")
            page.fill("#signin-username", "owner")
            page.fill("#signin-password", "owner-pass-1")
            page.press("#signin-password", "Enter")
            page.wait_for_selector("#nav:not([hidden])")
            page.goto(f"{base}/#/projects/{pid}/dashboard")
            page.wait_for_selector("#dry-run-start")  # drawn before the card's first GET returns
            page.wait_for_selector("#dash-dry-run .empty")
            assert "No dry run yet" in page.inner_text("#dash-dry-run")
            page.click("#dry-run-start")
            page.wait_for_function(
                "() => document.getElementById('dash-dry-run').innerText.includes('Queued')"
            )
            assert page.is_disabled("#dry-run-start")
            assert LearningService(app.state.db, data, inline=True).run_dry_runs_once()
            page.wait_for_selector("#dry-run-verdict", timeout=30000)  # the dashboard's next poll
            got = httpx.get(f"{base}/api/v1/projects/{pid}/dry-run", headers=headers, timeout=60).json()
            assert got["status"] == "done", got
            text = page.inner_text("#dry-run-verdict")
            assert text == got["result"]["verdict"]["text"] and text.startswith("On your data, ")
            table = page.inner_text("#dash-dry-run table")
            assert "(recommended)" in table and "margin" in table and "80 % interval" in table
            assert page.is_enabled("#dry-run-start")
            page.screenshot(path=str(ARTIFACTS / "dashboard-dry-run.png"), full_page=True)
            watched.check()
        finally:
            watched.close()
            browser.close()

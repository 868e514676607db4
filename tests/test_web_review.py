"""The review queue and the guidelines dialog in a real browser (Playwright driving Debian's
Chromium), on one small campaign of generated tones (issue 21).

The owner wrote guidelines (with a script and an onerror attribute that must stay text) and
marked two example clips; bob answered two clips wrongly, so they end low-agreement. A new
annotator meets the guidelines before the first task (nothing is leased until they close it),
hears the examples, and opens them again with G. A reviewer (delegated by the owner) works the
review queue: sets one clip's label as a control question, discards the other, and the queue
is empty. Any JavaScript error or request to another host fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api_support import tone_wav, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.server import create_app
from listenloop.store.models import Clip, Task, User, WorkerTrust
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()
http = httpx.Client(timeout=120)  # sign-ins hash passwords: seconds on a loaded machine

GUIDELINES = """# Low or high?

Answer **low** for a hum, **high** for a whistle.

<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">
"""


class Campaign:
    def __init__(self, base: str, app: Any) -> None:
        self.base, self.app = base, app
        self.owner = self.token("owner", "owner-pass-1")
        body = {
            "name": "Tones",
            "task_type": "binary",
            "classes": ["low", "high"],
            "redundancy": {"min": 2, "max": 2, "tau": 0.6},
            "control_rate": 0.0,
            "consistency_rate": 0.0,
            "trust_threshold": 0.0,
        }
        r = http.post(f"{base}/api/v1/projects", headers=self.owner, json=body)
        assert r.status_code == 201, r.text
        self.pid = r.json()["id"]
        files = {f"low_{i:02d}.wav": tone_wav(200 + 15 * i, i) for i in range(4)}
        files |= {f"high_{i:02d}.wav": tone_wav(2000 + 150 * i, 50 + i) for i in range(4)}
        r = http.post(
            f"{base}/api/v1/projects/{self.pid}/clips",
            headers=self.owner,
            files={"archive": ("t.zip", zip_of(files))},
        )
        assert r.status_code == 201, r.text
        with app.state.db.write() as s:
            self.id = {c.file_name: c.id for c in s.scalars(select(Clip).where(Clip.project_id == self.pid))}
            for clip in s.scalars(select(Clip).where(Clip.project_id == self.pid)):
                clip.rank = float(clip.file_name[-6:-4]) + (0.5 if clip.file_name.startswith("high") else 0.0)
        api = f"{base}/api/v1/projects/{self.pid}"
        assert (
            http.put(f"{api}/guidelines", headers=self.owner, json={"markdown": GUIDELINES}).status_code
            == 200
        )
        for name, label in (("low_00.wav", "low"), ("high_00.wav", "high")):
            r = http.post(
                f"{api}/examples", headers=self.owner, json={"clip_id": self.id[name], "label": label}
            )
            assert r.status_code == 201, r.text

    def token(self, user: str, password: str) -> dict[str, str]:
        r = http.post(f"{self.base}/api/v1/token", data={"username": user, "password": password})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def annotator(self, name: str) -> dict[str, str]:
        r = http.post(f"{self.base}/api/v1/users", json={"username": name, "password": f"{name}-password"})
        assert r.status_code == 201, r.text
        with self.app.state.db.write() as s:
            s.add(WorkerTrust(project_id=self.pid, user_id=r.json()["id"], trust=0.8, n_checked=5, n_right=4))
        return self.token(name, f"{name}-password")

    def answer(self, headers: dict[str, str], n: int, wrong: set[str]) -> None:
        for _ in range(n):
            task = http.get(f"{self.base}/api/v1/projects/{self.pid}/next", headers=headers).json()["task_id"]
            with self.app.state.db.read() as s:
                name = s.get(Clip, s.get(Task, task).clip_id).file_name
            truth = name.split("_")[0]
            answer = {"low": "high", "high": "low"}[truth] if name in wrong else truth
            r = http.post(f"{self.base}/api/v1/tasks/{task}/answer", headers=headers, json={"answer": answer})
            assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    tmp = tmp_path_factory.mktemp("review")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with serving(app) as base:
        k = Campaign(base, app)
        ann, bob = k.annotator("ann"), k.annotator("bob")
        k.answer(ann, 5, set())  # low_00, high_00, low_01, high_01, low_02 (queue order)
        k.answer(bob, 5, {"high_01.wav", "low_02.wav"})
        yield k


def sign_in(page: Any, base: str, user: str, password: str) -> None:
    page.goto(base + "/")
    page.wait_for_selector("html[data-app=ready]")
    page.fill("#signin-username", user)
    page.fill("#signin-password", password)
    page.press("#signin-password", "Enter")
    page.wait_for_selector("#nav:not([hidden])")


def test_guidelines_before_the_first_task_and_on_demand(campaign: Campaign) -> None:
    k = campaign
    http.post(f"{k.base}/api/v1/users", json={"username": "cara", "password": "cara-password"})
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, k.base, {"width": 1280, "height": 900})
        page = watched.page
        try:
            sign_in(page, k.base, "cara", "cara-password")
            page.goto(f"{k.base}/#/projects/{k.pid}/label")
            page.wait_for_selector("dialog#guide-dialog[open]")
            assert page.inner_text("#guide-dialog h1") == "Low or high?"
            text = page.inner_text("#guide-dialog .guide-text")
            assert "<script>" in text and 'onerror="window.__pwned = 2"' in text  # shown as text
            assert page.locator("#guide-dialog script, #guide-dialog img").count() == 0
            assert page.evaluate("window.__pwned") is None
            assert page.locator("#guide-dialog audio").count() == 2
            src = page.get_attribute("#guide-dialog audio >> nth=0", "src")
            assert page.request.get(k.base + src).status == 200
            with k.app.state.db.read() as s:  # nothing leased while the guidelines are open
                cara = s.scalar(select(User.id).where(User.username == "cara"))
                assert s.scalar(select(func.count()).select_from(Task).where(Task.annotator_id == cara)) == 0
            page.screenshot(path=str(ARTIFACTS / "guidelines-dialog.png"))
            page.click("#guide-dialog button.guide-close")
            page.wait_for_selector("dialog#guide-dialog", state="detached")
            page.wait_for_selector("#label-page[data-state=ready]")
            # on demand: G, and Escape closes; a number key inside the dialog answers nothing
            page.keyboard.press("g")
            page.wait_for_selector("dialog#guide-dialog[open]")
            page.keyboard.press("1")
            page.keyboard.press("Escape")
            page.wait_for_selector("dialog#guide-dialog", state="detached")
            with k.app.state.db.read() as s:
                answered = select(func.count()).select_from(Task).where(Task.answered_at.is_not(None))
                assert s.scalar(answered.where(Task.annotator_id == cara)) == 0
            page.click("#guide-open")
            page.wait_for_selector("dialog#guide-dialog[open]")
            # seen on this device: a reload does not show it again
            page.reload()
            page.wait_for_selector("#label-page[data-state=ready]")
            assert page.locator("dialog#guide-dialog").count() == 0
        finally:
            watched.context.close()
            browser.close()
    watched.check()


def test_reviewer_works_the_review_queue(campaign: Campaign) -> None:
    k = campaign
    k.annotator("rita")
    r = http.post(
        f"{k.base}/api/v1/projects/{k.pid}/members",
        headers=k.owner,
        json={"username": "rita", "role": "reviewer"},
    )
    assert r.status_code == 201, r.text
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, k.base, {"width": 1280, "height": 900})
        page = watched.page
        try:
            sign_in(page, k.base, "rita", "rita-password")
            page.click("a:has-text('Review clips')")
            page.wait_for_selector(".dashboard-root[data-ready=true] table.clips-table")
            assert page.inner_text("#clips-results-title") == "2 clips to review"
            assert page.locator("td.reasons .reason-low_agreement").count() == 2
            scores = [float(x) for x in page.locator("td.score").all_inner_texts()]
            assert scores == sorted(scores, reverse=True) and scores[0] > 1
            # the first: set its label, also as a control question
            page.click("table.clips-table tbody tr >> nth=0 >> button.clip-open")
            page.wait_for_selector("#clip-detail .correction select")
            first = page.inner_text("#clip-detail h2")
            page.select_option("#clip-detail .correction select", first.split("_")[0])
            page.check("#clip-detail input[name=control]")
            page.click("#clip-detail .correction button[type=submit]")
            page.wait_for_function(
                "() => document.getElementById('clips-results-title').textContent === '1 clip to review'"
            )
            # the other: discard it
            page.click("table.clips-table tbody tr >> nth=0 >> button.clip-open")
            page.wait_for_selector("#clip-detail button:has-text('Discard clip')")
            second = page.inner_text("#clip-detail h2")
            page.click("#clip-detail button:has-text('Discard clip')")
            page.wait_for_selector("#clip-detail .saved:has-text('discarded')")
            page.wait_for_function(
                "() => document.getElementById('clips-results-title').textContent === '0 clips to review'"
            )
            assert "Nothing to review" in page.inner_text(".results-summary")
            assert "review=all" in page.evaluate("location.hash")
            page.screenshot(path=str(ARTIFACTS / "review-queue.png"), full_page=True)
        finally:
            watched.context.close()
            browser.close()
    watched.check()
    with k.app.state.db.read() as s:
        one = s.scalars(select(Clip).where(Clip.id == k.id[first])).one()
        two = s.scalars(select(Clip).where(Clip.id == k.id[second])).one()
    assert (one.is_gold, one.gold_label, one.expert_label) == (True, first.split("_")[0], first.split("_")[0])
    assert two.status == "discarded"


def test_owner_pauses_archives_and_deletes_from_the_dashboard(campaign: Campaign) -> None:
    """Last in this module: it deletes the campaign's project."""
    k = campaign
    api = f"{k.base}/api/v1/projects/{k.pid}"
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, k.base, {"width": 1280, "height": 900})
        page = watched.page
        try:
            sign_in(page, k.base, "owner", "owner-pass-1")
            page.goto(f"{k.base}/#/projects/{k.pid}/dashboard")
            page.wait_for_selector("#dash-state[data-state=active]")
            page.click("#dash-pause")
            page.wait_for_selector("#dash-state[data-state=paused]")
            assert http.get(api, headers=k.owner).json()["state"] == "paused"
            page.click("#dash-resume")
            page.wait_for_selector("#dash-state[data-state=active]")
            page.click("#dash-archive")
            page.wait_for_selector("#dash-state[data-state=archived]")
            assert http.get(api, headers=k.owner).json()["state"] == "archived"
            page.fill("#dash-delete-name", "tones")  # not its name: nothing is sent
            page.click("#dash-delete")
            assert "exactly" in page.inner_text("#dash-lifecycle")
            assert http.get(api, headers=k.owner).status_code == 200
            page.fill("#dash-delete-name", "Tones")
            page.click("#dash-delete")
            page.wait_for_function("() => location.hash === '#/projects'")
        finally:
            watched.context.close()
            browser.close()
    watched.check()
    assert http.get(api, headers=k.owner).status_code == 404

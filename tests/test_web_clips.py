"""The owner's clip browser in a real browser (Playwright driving Debian's Chromium).

A small campaign of generated tones (low and high): seed labels, control questions, two
annotators through the API (bob gets one clip wrong, so it ends low-agreement) and a learning
round inline, which stores the model's predictions in its pool map. The owner goes from the
dashboard to the clip browser, filters it, opens the low-agreement clip with the keyboard,
hears it, sees its answers, soft label and prediction, and corrects its label; the export then
marks the clip's label `source` expert and the status counts it done. The address keeps the
filters and the open clip; the page fits a phone. Any JavaScript error or request to another
host fails the test. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api_support import tone_wav, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.learning.service import LearningService
from listenloop.server import create_app
from listenloop.store.models import Clip, Task, WorkerTrust
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()

OVERFLOWING = """() => [...document.querySelectorAll('.dash *')]
    .filter((el) => !el.closest('.table-scroll') && el.getBoundingClientRect().right > window.innerWidth + 1)
    .map((el) => `${el.tagName}.${el.getAttribute('class') || ''}#${el.id}`)"""


class Campaign:
    """The server, the project and its annotators."""

    def __init__(self, base: str, app: Any) -> None:
        self.base, self.app = base, app
        self.owner = self.token("owner", "owner-pass-1")
        body = {
            "name": "Tones",
            "task_type": "binary",
            "classes": ["low", "high"],
            "feature_set": "mfcc",
            "retrain_every": 1,
            "redundancy": {"min": 2, "max": 2, "tau": 0.6},
            "control_rate": 0.0,
            "consistency_rate": 0.0,
            "trust_threshold": 0.0,
        }
        # a generous timeout: the first project imports the learning core (seconds on a busy machine)
        r = httpx.post(f"{base}/api/v1/projects", headers=self.owner, json=body, timeout=120)
        assert r.status_code == 201, r.text
        self.pid = r.json()["id"]
        files = {f"low_{i:02d}.wav": tone_wav(200 + 15 * i, i) for i in range(8)}
        files |= {f"high_{i:02d}.wav": tone_wav(2000 + 150 * i, 50 + i) for i in range(8)}
        seed = "file,label\nlow_00.wav,low\nlow_01.wav,low\nhigh_00.wav,high\nhigh_01.wav,high\n"
        r = httpx.post(
            f"{base}/api/v1/projects/{self.pid}/clips",
            headers=self.owner,
            files={"archive": ("t.zip", zip_of(files)), "labels": ("s.csv", seed.encode())},
        )
        assert r.status_code == 201 and r.json()["added"] == 16, r.text
        gold = "file,label\nlow_02.wav,low\nhigh_02.wav,high\n"
        url = f"{base}/api/v1/projects/{self.pid}/gold"
        r = httpx.post(url, headers=self.owner, files={"file": ("g.csv", gold.encode())})
        assert r.status_code == 201, r.text
        with app.state.db.write() as s:
            for clip in s.scalars(select(Clip).where(Clip.project_id == self.pid)):
                clip.rank = float(clip.file_name[-6:-4]) + (0.5 if clip.file_name.startswith("high") else 0.0)

    def token(self, user: str, password: str) -> dict[str, str]:
        r = httpx.post(f"{self.base}/api/v1/token", data={"username": user, "password": password}, timeout=60)
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def annotator(self, name: str) -> dict[str, str]:
        """A new annotator who already passed some checks (trust 0.8): two agreeing answers close a clip."""
        body = {"username": name, "password": f"{name}-password"}
        r = httpx.post(f"{self.base}/api/v1/users", json=body, timeout=60)
        with self.app.state.db.write() as s:
            s.add(WorkerTrust(project_id=self.pid, user_id=r.json()["id"], trust=0.8, n_checked=5, n_right=4))
        return self.token(name, f"{name}-password")

    def answer(self, headers: dict[str, str], n: int, wrong: set[str] | None = None) -> list[str]:
        """Answer `n` tasks right (the file's prefix), wrongly for the files in `wrong`."""
        names = []
        for _ in range(n):
            r = httpx.get(f"{self.base}/api/v1/projects/{self.pid}/next", headers=headers)
            assert r.status_code == 200, r.text
            task_id = r.json()["task_id"]
            with self.app.state.db.read() as s:
                name = s.get(Clip, s.get(Task, task_id).clip_id).file_name
            truth = name.split("_")[0]
            answer = ({"low": "high", "high": "low"}[truth]) if name in (wrong or set()) else truth
            url = f"{self.base}/api/v1/tasks/{task_id}/answer"
            r = httpx.post(url, headers=headers, json={"answer": answer})
            assert r.status_code == 201, r.text
            names.append(name)
        return names


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    tmp = tmp_path_factory.mktemp("clips")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with serving(app) as base:
        k = Campaign(base, app)
        ann, bob = k.annotator("ann"), k.annotator("bob")
        heard = k.answer(ann, 10)  # every crowd clip: queued in the order low_03, high_03, low_04, ...
        assert heard[:3] == ["low_03.wav", "high_03.wav", "low_04.wav"]
        assert k.answer(bob, 3, wrong={"high_03.wav"}) == heard[:3]
        outcomes = LearningService(app.state.db, tmp / "data", inline=True).run_once()
        assert any(o.run_id is not None and o.state == "ran" for o in outcomes), outcomes
        yield k


def _shows(page: Any, heading: str) -> None:
    """Wait until the results' heading says `heading` (e.g. "3 clips")."""
    page.wait_for_function(
        "(t) => document.getElementById('clips-results-title').textContent === t", arg=heading
    )


def test_owner_filters_opens_and_corrects_a_clip(campaign: Campaign) -> None:
    k = campaign
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, k.base, {"width": 1280, "height": 900})
        page = watched.page
        try:
            page.goto(k.base + "/")
            page.wait_for_selector("html[data-app=ready]")
            page.fill("#signin-username", "owner")
            page.fill("#signin-password", "owner-pass-1")
            page.press("#signin-password", "Enter")
            page.wait_for_selector("#nav:not([hidden])")
            page.goto(f"{k.base}/#/projects/{k.pid}/dashboard")
            page.click("a:has-text('Browse clips')")
            page.wait_for_selector(".dashboard-root[data-ready=true] table.clips-table")
            assert page.inner_text("#clips-results-title") == "16 clips"
            assert page.locator("table.clips-table tbody tr").count() == 16
            assert "predictions from learning round 1" in page.inner_text(".results-summary")

            # filter: low agreement (the address follows)
            page.select_option("#cf-status", "low_agreement")
            _shows(page, "1 clip")
            assert page.locator("table.clips-table tbody tr").count() == 1
            assert "status=low_agreement" in page.evaluate("location.hash")
            assert "high_03.wav" in page.inner_text("table.clips-table tbody")

            # open it with the keyboard: audio, spectrogram, answers, soft label, prediction
            page.focus("button.clip-open")
            page.keyboard.press("Enter")
            page.wait_for_selector("#clip-detail h2:has-text('high_03.wav')")
            assert page.evaluate("document.activeElement.id") == "clip-detail-title"
            detail = page.inner_text("#clip-detail")
            assert "low agreement" in detail and "Round 1 (8 training labels) predicts" in detail
            answers = page.locator("#clip-detail table.answers tbody tr")
            assert answers.count() == 2
            assert {answers.nth(i).locator("th").inner_text() for i in range(2)} == {"ann", "bob"}
            assert page.locator("#clip-detail .soft-bars li").count() == 2
            assert "50%" in page.inner_text("#clip-detail .soft-bars")
            audio = page.get_attribute("#clip-detail audio", "src")
            assert page.request.get(k.base + audio).status == 200
            picture = "document.querySelector('#clip-detail img.clip-spectrogram')"
            page.wait_for_function(f"() => {picture}.complete")
            assert page.evaluate(f"{picture}.naturalWidth") > 0
            page.screenshot(path=str(ARTIFACTS / "clip-browser-open.png"), full_page=True)

            # correct its label: keyboard only
            select = page.locator("#clip-detail .correction select")
            select.focus()
            select.select_option("high")
            page.keyboard.press("Tab")
            page.keyboard.press("Enter")
            page.wait_for_selector("#clip-detail .saved:has-text('set to high')")
            assert "expert (owner)" in page.inner_text("#clip-detail .big-label")
            expert_rows = page.locator("#clip-detail table.answers tr.is-expert")
            assert expert_rows.count() == 1 and "owner" in expert_rows.inner_text()
            # the clip is done now: it left the low-agreement filter
            _shows(page, "0 clips")

            # done and corrected by the owner
            page.select_option("#cf-source", "expert")
            page.select_option("#cf-status", "done")
            _shows(page, "1 clip")
            row = page.inner_text("table.clips-table tbody tr")
            assert "high_03.wav" in row and "done" in row and "expert" in row

            # in the export (source expert) and the status (labels done)
            text = httpx.get(f"{k.base}/api/v1/projects/{k.pid}/export?format=csv", headers=k.owner).text
            rows = {r["file"]: r for r in csv.DictReader(io.StringIO(text))}
            assert (rows["high_03.wav"]["label"], rows["high_03.wav"]["source"]) == ("high", "expert")
            assert rows["low_03.wav"]["source"] == "crowd" and rows["low_00.wav"]["source"] == "seed"

            # who answered what; confidence bounds checked before asking
            page.click("#cf-reset")
            _shows(page, "16 clips")
            page.select_option("#cf-annotator", "bob")
            _shows(page, "3 clips")
            page.fill("#cf-min", "0.9")
            page.fill("#cf-max", "0.2")
            page.press("#cf-max", "Enter")
            assert "above the highest" in page.inner_text("#cf-error")
            page.fill("#cf-max", "")
            page.press("#cf-min", "Enter")
            page.wait_for_function("() => !location.hash.includes('max_confidence')")

            # the address brings back the same view; J and K walk the table
            page.select_option("#cf-annotator", "")
            page.wait_for_function("() => !location.hash.includes('annotator')")
            page.click("table.clips-table tbody tr >> nth=0")
            page.wait_for_selector("#clip-detail h2:not(:has-text('No clip open'))")
            first = page.inner_text("#clip-detail h2")
            page.keyboard.press("j")
            page.wait_for_function(
                "(t) => document.querySelector('#clip-detail h2').textContent !== t", arg=first
            )
            address = page.evaluate("location.hash")
            assert "clip=" in address and "min_confidence=0.9" in address
            second = page.inner_text("#clip-detail h2")
            page.reload()
            page.wait_for_selector(".dashboard-root[data-ready=true]")
            page.wait_for_selector(f"#clip-detail h2:has-text('{second}')")
            assert page.input_value("#cf-min") == "0.9"
            page.keyboard.press("Escape")
            page.wait_for_selector("#clip-detail h2:has-text('No clip open')")

            # a phone: nothing sticks out sideways
            page.set_viewport_size({"width": 390, "height": 844})
            page.click("table.clips-table tbody tr >> nth=0")
            page.wait_for_selector("#clip-detail audio")
            page.wait_for_timeout(200)
            assert page.evaluate(OVERFLOWING) == []
            page.screenshot(path=str(ARTIFACTS / "clip-browser-phone.png"), full_page=True)
        finally:
            watched.context.close()
            browser.close()
    watched.check()
    status = httpx.get(f"{k.base}/api/v1/projects/{k.pid}/status", headers=k.owner).json()
    assert status["low_agreement"] == 0


def test_annotators_get_no_clip_browser(campaign: Campaign) -> None:
    ann = campaign.token("ann", "ann-password")
    r = httpx.get(f"{campaign.base}/api/v1/projects/{campaign.pid}/clips", headers=ann)
    assert r.status_code == 403


def test_owner_finds_similar_clips_and_labels_them(campaign: Campaign) -> None:
    """Search by example: the open clip's nearest clips (itself first), one labelled from the list."""
    k = campaign
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, k.base, {"width": 1280, "height": 900})
        page = watched.page
        try:
            page.goto(k.base + "/")
            page.wait_for_selector("html[data-app=ready]")
            page.fill("#signin-username", "owner")
            page.fill("#signin-password", "owner-pass-1")
            page.press("#signin-password", "Enter")
            page.wait_for_selector("#nav:not([hidden])")
            page.goto(f"{k.base}/#/projects/{k.pid}/clips")
            page.wait_for_selector(".dashboard-root[data-ready=true] table.clips-table")
            assert page.locator("form.similar-upload").count() == 1  # search by an audio file
            page.click("table.clips-table tbody tr:has-text('high_05.wav')")
            page.wait_for_selector("#clip-detail h2:has-text('high_05.wav')")
            page.click("#clip-detail button.find-similar")
            page.wait_for_selector("#clip-detail table.similar tbody tr")
            rows = page.locator("#clip-detail table.similar tbody tr")
            assert rows.count() == 10
            assert "high_05.wav" in rows.nth(0).locator("th").inner_text()  # itself, at distance 0
            assert rows.nth(0).locator("td").nth(0).inner_text() == "0.00"
            # a tone's nearest are tones of its kind: the high ones come before any low one
            files = [rows.nth(i).locator("th").inner_text() for i in range(10)]
            highs = [f.startswith("high") for f in files]
            assert highs[:4] == [True] * 4, files
            target = next(
                f
                for f in files[1:]
                if f.startswith("high")
                and f not in ("high_00.wav", "high_01.wav", "high_02.wav", "high_03.wav")
            )
            row = page.locator(f"#clip-detail table.similar tbody tr:has-text('{target}')")
            row.locator("select").select_option("high")
            row.locator("button:has-text('Set')").click()
            page.wait_for_function(
                "(f) => [...document.querySelectorAll('#clip-detail table.similar tbody tr')].some((tr) =>"
                " tr.textContent.includes(f) && tr.querySelector('.sim-label').textContent.includes('expert')"
                ")",
                arg=target,
            )
            page.screenshot(path=str(ARTIFACTS / "clip-browser-similar.png"), full_page=True)
        finally:
            watched.context.close()
            browser.close()
    watched.check()
    text = httpx.get(f"{k.base}/api/v1/projects/{k.pid}/export?format=csv", headers=k.owner).text
    rows = {r["file"]: r for r in csv.DictReader(io.StringIO(text))}
    assert (rows[target]["label"], rows[target]["source"]) == ("high", "expert")

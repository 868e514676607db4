"""The owner's pages in a real browser (Playwright driving Debian's Chromium).

The server runs in-process on a loopback port. The owner signs in, creates a project through
the form (client-side and server-side errors shown by field), lands on the new draft's
dashboard, uploads a zip of generated tones with seed labels and a file that is not audio
(refused, with the reason), uploads control questions, and opens the project to annotators.
An annotator answers through the API and the learning
service runs two rounds inline; the dashboard picks them up by polling: learning curve, pool
map, annotator table (flagging through the page), agreement, exports (a real download). It must not
scroll sideways at 390 px, and it stops polling once the route changes. Any JavaScript error or
request to another host fails the test. Screenshots go to test-artifacts/ at the repository's root.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_support import tone_wav, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.learning.service import LearningService
from listenloop.server import create_app
from listenloop.store.models import ModelRun, Project, Task
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()

N_PER_CLASS = 20
# Elements of the owner's pages that stick out of the viewport (tables scroll inside their box).
OVERFLOWING = """() => [...document.querySelectorAll('.dash *')]
    .filter((el) => !el.closest('.table-scroll') && el.getBoundingClientRect().right > window.innerWidth + 1)
    .map((el) => `${el.tagName}.${el.getAttribute('class') || ''}#${el.id}`)"""


def _clips() -> dict[str, bytes]:
    """low_*.wav (200-400 Hz) and high_*.wav (2-4 kHz): the class is the name's prefix."""
    files = {}
    for i in range(N_PER_CLASS):
        files[f"low_{i:02d}.wav"] = tone_wav(200 + 10 * i, i)
        files[f"high_{i:02d}.wav"] = tone_wav(2000 + 100 * i, 100 + i)
    return files


class Live:
    """The running server: base URL, the app (its database) and data folder."""

    def __init__(self, base: str, app: Any, data: Path) -> None:
        self.base = base
        self.app = app
        self.data = data


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on a free loopback port with one owner account."""
    tmp = tmp_path_factory.mktemp("dash")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with serving(app) as base:
        yield Live(base, app, tmp / "data")


class Crowd:
    """Annotators who answer every task right (the class is the file name's prefix).

    An annotator's answer labels a clip only once a passed control question (drawn at random,
    one task in five here) has raised their trust above the prior's 0.5; until then the clips
    they hear stay open, and one annotator can run out of clips before the draw comes. So
    when the current annotator has none left, a new one joins: the clips are heard again and
    more control questions are drawn, and the test does not hang on one annotator's luck.
    """

    def __init__(self, live: Live, pid: int) -> None:
        self.live, self.pid, self.names = live, pid, []
        self.headers: dict[str, str] = {}
        self.join()

    def join(self) -> None:
        name = "ann" if not self.names else f"ann{len(self.names) + 1}"
        base = self.live.base
        httpx.post(f"{base}/api/v1/users", json={"username": name, "password": "ann-password"})
        token = httpx.post(f"{base}/api/v1/token", data={"username": name, "password": "ann-password"})
        self.names.append(name)
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def answer(self, n: int) -> None:
        """Answer `n` tasks, a new annotator joining whenever the current one has none left."""
        base = self.live.base
        for _ in range(n):
            r = httpx.get(f"{base}/api/v1/projects/{self.pid}/next", headers=self.headers)
            if r.status_code == 204:
                assert len(self.names) < 8, f"{len(self.names)} annotators ran out of tasks"
                self.join()
                r = httpx.get(f"{base}/api/v1/projects/{self.pid}/next", headers=self.headers)
            assert r.status_code == 200, r.text
            task = r.json()
            with self.live.app.state.db.read() as session:
                name = session.get(Task, task["task_id"]).clip.file_name
            r = httpx.post(
                f"{base}/api/v1/tasks/{task['task_id']}/answer",
                headers=self.headers,
                json={"answer": name.split("_")[0]},
            )
            assert r.status_code == 201, r.text

    def answer_until_labelled(self, n: int) -> None:
        """Answer `n` tasks, then on until at least one more clip is labelled."""
        before = _labels(self.live, self.pid)
        self.answer(n)
        for _ in range(60):
            if _labels(self.live, self.pid) > before:
                return
            self.answer(1)
        raise AssertionError("60 more answers labelled no clip")


def _labels(live: Live, pid: int) -> int:
    with live.app.state.db.read() as session:
        return int(session.get(Project, pid).labels_count)


def _learn(live: Live, pid: int) -> None:
    """One learning round of the project, inline (the app's background service is off)."""
    outcomes = [
        o
        for o in LearningService(live.app.state.db, live.data, inline=True).run_once()
        if o.project_id == pid
    ]
    rounds = [o for o in outcomes if o.run_id is not None]  # the rest: a crowd skills refresh
    assert len(rounds) == 1 and all(o.state == "ran" for o in outcomes), outcomes


def test_owner_creates_uploads_and_watches(live: Live) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    dashboard_calls: list[float] = []

    def count_polls(url: str) -> None:
        if "/dashboard" in url and "/api/v1/" in url:
            dashboard_calls.append(time.monotonic())

    with sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(
            browser, live.base, {"width": 1280, "height": 900}, on_request=count_polls, accept_downloads=True
        )
        context, page = watched.context, watched.page
        try:
            # sign in, then the new-project form
            page.goto(live.base + "/")
            page.wait_for_selector("html[data-app=ready]")
            page.fill("#signin-username", "owner")
            page.fill("#signin-password", "owner-pass-1")
            page.press("#signin-password", "Enter")
            page.wait_for_selector("#nav:not([hidden])")
            page.goto(live.base + "/#/new")
            page.wait_for_selector("form.new-project")
            assert page.locator('link[href="/static/dashboard.css"]').count() == 1
            assert (
                page.input_value("#np-redundancy-max") == "7"
                and page.input_value("#np-control_rate") == "0.1"
            )

            # client-side checks, shown by field
            page.fill("#np-classes", "low, low")
            page.click("text=Create project")
            assert "Give the project a name" in page.inner_text("#np-name-error")
            assert "named twice" in page.inner_text("#np-classes-error")
            assert page.get_attribute("#np-name", "aria-invalid") == "true"
            page.fill("#np-name", "Tones")
            page.fill("#np-classes", "low\nhigh")
            page.fill("#np-control_rate", "0.3")
            page.fill("#np-consistency_rate", "0.3")
            page.click("text=Create project")
            assert "together must not exceed 0.5" in page.inner_text("#np-consistency_rate-error")
            page.fill("#np-consistency_rate", "0")
            page.fill("#np-control_rate", "0.2")

            # a server-side refusal lands on its field (a learner the server does not know)
            page.evaluate(
                """() => { const s = document.getElementById('np-learner');
                           s.append(new Option('nope', 'nope')); s.value = 'nope'; }"""
            )
            page.click("text=Create project")
            page.wait_for_function(
                "() => document.getElementById('np-learner-error').textContent.includes('nope')"
            )
            page.select_option("#np-learner", "")

            page.select_option("#np-feature_set", "mfcc")
            page.fill("#np-retrain_every", "1")
            page.fill("#np-redundancy-min", "1")
            page.fill("#np-redundancy-max", "3")
            page.fill("#np-redundancy-tau", "0.6")
            page.fill("#np-trust_threshold", "0")
            page.click("text=Create project")

            # the new draft's dashboard, its upload card first: a zip with one file that is not
            # audio, seed labels, control questions
            page.wait_for_selector("#dash-upload #up-archive")
            pid = int(page.evaluate("location.hash").split("/")[2])
            clips = _clips()
            archive = zip_of({**clips, "notes.wav": b"this is not audio at all"})
            seeds = [f"low_{i:02d}.wav" for i in range(6)] + [f"high_{i:02d}.wav" for i in range(6)]
            seed_csv = "file,label\n" + "".join(f"{n},{n.split('_')[0]}\n" for n in seeds)
            page.set_input_files(
                "#up-archive", files=[{"name": "tones.zip", "mimeType": "application/zip", "buffer": archive}]
            )
            page.set_input_files(
                "#up-labels",
                files=[{"name": "seed.csv", "mimeType": "text/csv", "buffer": seed_csv.encode()}],
            )
            page.click("text=Upload audio")
            page.wait_for_selector("text=40 clips added, 1 refused")
            assert page.get_attribute("#up-progress", "value") == "1"
            assert "notes.wav" in page.inner_text("table.rejected")
            gold = [f"low_{i:02d}.wav" for i in range(6, 9)] + [f"high_{i:02d}.wav" for i in range(6, 9)]
            gold_csv = "file,label\n" + "".join(f"{n},{n.split('_')[0]}\n" for n in gold) + "ghost.wav,low\n"
            page.set_input_files(
                "#up-gold", files=[{"name": "gold.csv", "mimeType": "text/csv", "buffer": gold_csv.encode()}]
            )
            page.click("text=Upload control questions")
            page.wait_for_selector("text=6 control questions marked")
            assert "ghost.wav" in page.inner_text("table.rejected >> nth=-1")

            # the dashboard before any learning round; the owner opens the draft to annotators
            page.click("#dash-open")
            page.wait_for_selector("#dash-draft.is-open")
            page.wait_for_selector("#dash-curve")
            assert "No learning round yet" in page.inner_text("#dash-curve")
            assert "No map yet" in page.inner_text("#dash-map")

            # an annotator answers, the learning service runs twice; polling brings it in
            crowd = Crowd(live, pid)
            crowd.answer_until_labelled(4)
            _learn(live, pid)
            crowd.answer_until_labelled(4)
            _learn(live, pid)
            with live.app.state.db.read() as session:
                runs = session.query(ModelRun).filter(ModelRun.project_id == pid).all()
                assert len(runs) == 2 and all(r.map for r in runs), "the learning rounds must record maps"
            page.wait_for_selector("#dash-curve svg.chart polyline", state="attached", timeout=15000)
            page.wait_for_selector("#dash-map svg.chart circle", state="attached")
            assert page.locator("#dash-map svg.chart circle").count() >= 20
            assert page.locator("#dash-map svg.chart circle.labelled").count() >= 1
            # newest + two rounds (the poll after the second round may not have come yet)
            page.wait_for_function("() => document.querySelectorAll('#dash-run option').length === 3")
            # the comparison with passive learning waits for held-out clips: the passive arm's
            # labelled ones, scored by both arms (few are labelled yet); the panels say so
            assert "left out of both fits" in page.inner_text("#dash-curve")
            assert "Against passive learning" in page.inner_text("#dash-savings")
            page.select_option("#dash-run", index=1)  # the first round's map
            page.wait_for_function(
                "document.querySelector('#dash-map svg title').textContent.includes('after')"
            )
            curve = page.inner_text("#dash-curve figcaption")
            assert "Latest score" in curve and "clips chosen at random" in page.inner_text("#dash-curve")
            assert (
                page.locator("#dash-curve svg title").count() >= 1
                and page.locator("#dash-curve svg desc").count() == 1
            )
            assert page.locator("#dash-labels svg.chart rect").count() >= 2
            assert page.locator("#dash-answers svg.chart").count() == 1
            savings = page.inner_text("#dash-savings")
            assert "Fixed 3 answers per clip" in savings and "Fixed 5 answers per clip" in savings
            # the learning service's poll also stored the crowd's agreement: alpha and kappa per class
            page.wait_for_selector("#dash-agreement table.agreement")
            agreement = page.inner_text("#dash-agreement")
            assert "Krippendorff" in agreement and "Fleiss" in agreement and "high" in agreement

            # annotators: flag through the page (keyboard), the table updates
            page.wait_for_selector("#dash-annotators th[scope=row]:has-text('ann')")
            page.focus("button[aria-label='Flag ann']")
            page.keyboard.press("Enter")
            page.wait_for_selector("#dash-annotators .badge.flagged")
            assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Unflag ann"
            r = httpx.get(f"{live.base}/api/v1/projects/{pid}/annotators", headers=_owner(live))
            assert [a["flagged"] for a in r.json() if a["username"] == "ann"] == [True]

            # an open "Show the numbers" stays open while polling redraws the chart with new data
            page.click("#dash-labels summary")
            before = page.inner_text("#dash-labels figcaption")
            crowd.answer_until_labelled(3)
            page.wait_for_function(
                "(t) => document.querySelector('#dash-labels figcaption').textContent !== t", arg=before
            )
            assert page.locator("#dash-labels details[open]").count() == 1

            # export: a real download through the session cookie
            with page.expect_download() as info:
                page.click("a:has-text('Labels (CSV)')")
            text = Path(info.value.path()).read_text()
            rows = list(csv.DictReader(io.StringIO(text)))
            assert rows and set(rows[0]) >= {"clip_id", "file", "label", "confidence"}
            assert len(rows) == 40

            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(300)
            assert page.evaluate(OVERFLOWING) == []
            seen = int(page.get_attribute(".dashboard-root", "data-polls") or 0)
            page.wait_for_function(
                "(n) => Number(document.querySelector('.dashboard-root').dataset.polls) > n", arg=seen
            )
            assert page.evaluate(OVERFLOWING) == []  # redrawn at the phone's width
            page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)

            # leaving the route stops the polling
            polls = len(dashboard_calls)
            page.goto(live.base + "/#/projects")
            page.wait_for_selector("#dash-curve", state="detached")
            left = len(dashboard_calls)
            page.wait_for_timeout(6500)
            assert len(dashboard_calls) == left and polls >= 2, (polls, left, len(dashboard_calls))

            # the form fits a phone too
            page.goto(live.base + "/#/new")
            page.wait_for_selector("form.new-project")
            assert page.evaluate(OVERFLOWING) == []
            page.screenshot(path=str(ARTIFACTS / "new-project-phone.png"), full_page=True)
        finally:
            context.close()
            browser.close()
    watched.check()


def _owner(live: Live) -> dict[str, str]:
    token = httpx.post(f"{live.base}/api/v1/token", data={"username": "owner", "password": "owner-pass-1"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}

"""The owner manages a project in a real browser (Playwright driving Debian's Chromium).

Upload to a project that already exists, from its dashboard after a reload; change its
settings (a client-side check, a server-side refusal, then a saved change); and the draft
state: the New-project page shows a loading state while its options load, a project made with
the form is a draft that an annotator neither sees nor gets clips from, and once its owner
opens it from the dashboard the annotator finds it and labels; the annotators table says why
spammer detection flagged someone. Any JavaScript error or request to another host fails a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api_support import wavs, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.server import create_app
from listenloop.store.database import Database
from listenloop.store.models import ProjectMember, User
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()

DIGITS = [str(i) for i in range(10)]
DESKTOP = {"width": 1280, "height": 900}


class Live:
    """The running server: its base URL and the owner's bearer headers."""

    def __init__(self, base: str, db: Database) -> None:
        self.base, self.db = base, db
        self.owner = self.token("owner", "owner-pass-1")

    def token(self, username: str, password: str) -> dict[str, str]:
        r = httpx.post(f"{self.base}/api/v1/token", data={"username": username, "password": password})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def api(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        # a generous timeout: the first project imports the learning core (seconds on a busy machine)
        kw.setdefault("timeout", 120)
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=headers or self.owner, **kw)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on a free loopback port with one owner account (learning service off)."""
    tmp = tmp_path_factory.mktemp("admin")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with serving(app) as base:
        yield Live(base, app.state.db)


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = launch(p)
        try:
            yield chromium
        finally:
            chromium.close()


def sign_in(watched: Watched, base: str, username: str, password: str) -> Any:
    page = watched.page
    page.goto(base + "/")
    page.wait_for_selector("html[data-app=ready]")
    page.fill("#signin-username", username)
    page.fill("#signin-password", password)
    page.press("#signin-password", "Enter")
    page.wait_for_selector("#nav:not([hidden])")
    return page


def csv_file(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode()}


def zip_file(name: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {"name": name, "mimeType": "application/zip", "buffer": zip_of(files)}


def test_upload_to_an_existing_project_and_change_its_settings(live: Live, browser: Any) -> None:
    body = {"name": "Digits", "task_type": "classification", "classes": DIGITS}
    pid = live.api("POST", "/projects", json=body).json()["id"]
    first, later = dict(list(wavs(12).items())[:4]), dict(list(wavs(12).items())[4:])
    r = live.api("POST", f"/projects/{pid}/clips", files={"archive": ("a.zip", zip_of(first))})
    assert r.status_code == 201 and r.json()["added"] == 4

    watched = Watched(browser, live.base, DESKTOP)
    try:
        page = sign_in(watched, live.base, "owner", "owner-pass-1")
        page.goto(f"{live.base}/#/projects/{pid}/dashboard")
        page.wait_for_selector("#dash-upload")
        page.reload()  # the upload card is part of the dashboard, not a step after creation
        page.wait_for_selector("#dash-upload #up-archive")
        assert page.locator("#dash-draft.is-open").count() == 1  # created through the API: open at once

        # an upload the server refuses whole: the bar shows the failure in the error colour
        page.set_input_files("#up-archive", files=[zip_file("text.zip", {"notes.wav": b"not audio"})])
        page.click("button:has-text('Upload audio')")
        page.wait_for_selector("#dash-upload .progress.failed:has-text('Failed')")
        assert "notes.wav" in page.inner_text("#dash-upload table.rejected")

        # audio with seed labels, one of them for a file not in the zip; then control questions
        seeds = list(later)[:3]
        seed_csv = "file,label\n" + "".join(f"{n},{n[0]}\n" for n in seeds) + "ghost.wav,1\n"
        page.set_input_files("#up-archive", files=[zip_file("more.zip", later)])
        page.set_input_files("#up-labels", files=[csv_file("seed.csv", seed_csv)])
        page.click("button:has-text('Upload audio')")
        page.wait_for_selector("#dash-upload .ok:has-text('8 clips added, 1 refused')")
        assert page.get_attribute("#up-progress", "value") == "1"
        assert page.locator("#dash-upload .progress.failed").count() == 0
        assert "ghost.wav" in page.inner_text("#dash-upload table.rejected")
        gold = list(later)[3:5]
        page.set_input_files(
            "#up-gold", files=[csv_file("gold.csv", "file,label\n" + "".join(f"{n},{n[0]}\n" for n in gold))]
        )
        page.click("button:has-text('Upload control questions')")
        page.wait_for_selector("#dash-upload .ok:has-text('2 control questions marked')")
        status = live.api("GET", f"/projects/{pid}/status").json()
        assert status["clips"] == 10 and status["labels_done"] == 3  # 12 clips, 2 of them control questions
        # the dashboard's next poll shows them
        page.wait_for_function(
            "() => document.querySelector('#dash-progress-card').textContent.includes('10')", timeout=12000
        )

        # settings: seed labels exist now, so the class list is shown as fixed, with the reason
        settings = page.locator("#dash-settings")
        assert "class list cannot change" in settings.inner_text()
        assert page.locator("#st-classes").is_hidden() and page.locator("#st-name").is_visible()
        # a client-side check stops a bad change before it is sent
        page.fill("#st-redundancy-min", "9")
        page.click("button:has-text('Save settings')")
        assert "at least the minimum" in page.inner_text("#st-redundancy-max-error")
        assert page.get_attribute("#st-redundancy-max", "aria-invalid") == "true"
        page.fill("#st-redundancy-min", "2")
        # a server-side refusal lands on its field (a learner the server does not know)
        page.evaluate(
            """() => { const s = document.getElementById('st-learner');
                       s.append(new Option('nope', 'nope')); s.value = 'nope'; }"""
        )
        page.click("button:has-text('Save settings')")
        page.wait_for_function(
            "() => document.getElementById('st-learner-error').textContent.includes('nope')"
        )
        page.select_option("#st-learner", "svm")
        # a saved change
        page.fill("#st-name", "Spoken digits")
        page.fill("#st-redundancy-max", "4")
        page.check("#st-invite_only")
        assert not page.is_checked("#st-auto_block_spammers")  # off by default
        page.check("#st-auto_block_spammers")
        page.click("button:has-text('Save settings')")
        page.wait_for_selector("#dash-settings .ok:has-text('Saved')")
        assert page.inner_text(".dash-head h1") == "Spoken digits: dashboard"
        project = live.api("GET", f"/projects/{pid}").json()
        assert project["name"] == "Spoken digits" and project["invite_only"] is True
        assert project["auto_block_spammers"] is True
        assert project["redundancy"] == {"min": 2, "max": 4, "tau": 0.95} and project["learner"] == "svm"
        page.reload()  # stored: the panel shows the saved values
        page.wait_for_selector("#st-name")
        assert page.input_value("#st-name") == "Spoken digits"
        assert page.input_value("#st-redundancy-max") == "4"
        assert page.is_checked("#st-invite_only") and page.is_checked("#st-auto_block_spammers")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-manage.png"), full_page=True)
    finally:
        watched.close()
    watched.check()


def test_a_draft_from_the_form_is_hidden_until_its_owner_opens_it(live: Live, browser: Any) -> None:
    r = live.api("POST", "/users", json={"username": "ann", "password": "ann-password"})
    assert r.status_code == 201
    annotator = live.token("ann", "ann-password")
    owner = Watched(browser, live.base, DESKTOP)
    ann = Watched(browser, live.base, DESKTOP)
    try:
        page = sign_in(owner, live.base, "owner", "owner-pass-1")
        # the New-project page says it is loading while its options are on their way
        held: list[Any] = []
        page.route("**/api/v1/project-options", lambda route: held.append(route))
        page.goto(live.base + "/#/new")
        page.wait_for_selector(".loading-state[role=status]")
        assert "Loading the new-project form" in page.inner_text(".loading-state")
        assert page.locator("form.new-project").count() == 0
        for _ in range(100):  # the route handler runs while Playwright waits
            if held:
                break
            page.wait_for_timeout(50)
        assert len(held) == 1
        held[0].continue_()
        page.wait_for_selector("form.new-project")
        assert page.locator(".loading-state").count() == 0
        page.unroute("**/api/v1/project-options")

        page.fill("#np-name", "Secret digits")
        page.fill("#np-classes", ",".join(DIGITS))
        page.click("text=Create project")
        page.wait_for_selector("#dash-draft:not(.is-open) #dash-open")
        pid = int(page.evaluate("location.hash").split("/")[2])
        assert "Annotators cannot see this project yet" in page.inner_text("#dash-draft")
        page.set_input_files("#up-archive", files=[zip_file("d.zip", wavs(6))])
        page.click("button:has-text('Upload audio')")
        page.wait_for_selector("#dash-upload .ok:has-text('6 clips added')")
        page.goto(live.base + "/#/projects")  # the owner's list marks the draft
        page.wait_for_selector("li.project:has-text('Secret digits') .draft-label")

        # the annotator sees no such project and gets nothing from it
        apage = sign_in(ann, live.base, "ann", "ann-password")
        apage.wait_for_selector(".project-list:not([aria-busy])")
        assert "Secret digits" not in apage.inner_text(".project-list")
        r = live.api("GET", f"/projects/{pid}/next", headers=annotator)
        assert r.status_code == 403 and "draft" in r.json()["detail"]

        # the owner opens it from the dashboard
        page.goto(f"{live.base}/#/projects/{pid}/dashboard")
        page.click("#dash-open")
        page.wait_for_selector("#dash-draft.is-open")
        assert live.api("GET", f"/projects/{pid}").json()["open"] is True

        # now the annotator finds it and gets a clip
        apage.reload()
        apage.wait_for_selector(f"a[href='#/projects/{pid}/label']")
        assert "Secret digits" in apage.inner_text(".project-list")
        apage.click(f"a[href='#/projects/{pid}/label']")
        apage.wait_for_selector("#label-page[data-ready-task]")
    finally:
        owner.close()
        ann.close()
    owner.check()
    ann.check()


def test_the_dashboard_of_an_empty_project_offers_upload_first(live: Live, browser: Any) -> None:
    body = {"name": "Empty", "task_type": "binary", "classes": ["yes", "no"], "open": False}
    pid = live.api("POST", "/projects", json=body).json()["id"]
    watched = Watched(browser, live.base, {"width": 390, "height": 844})
    try:
        page = sign_in(watched, live.base, "owner", "owner-pass-1")
        page.goto(f"{live.base}/#/projects/{pid}/dashboard")
        page.wait_for_selector("#dash-upload")
        first = page.evaluate("document.querySelector('.dash-grid').firstElementChild.id")
        assert first == "dash-upload"
        assert "no clips yet" in page.inner_text("#dash-draft")
        overflowing = page.evaluate(
            """() => [...document.querySelectorAll('.dash *')]
                .filter((el) => !el.closest('.table-scroll')
                                && el.getBoundingClientRect().right > window.innerWidth + 1)
                .map((el) => el.tagName + '#' + el.id)"""
        )
        assert overflowing == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-empty-draft-phone.png"), full_page=True)
    finally:
        watched.close()
    watched.check()


def test_a_rating_project_sets_its_tolerance(live: Live, browser: Any) -> None:
    """Continuous projects show `rating_tolerance` in the settings panel: checked in the page
    (at most the range's width), saved, and emptied back to the default (a tenth of the range)."""
    body = {"name": "Loudness", "task_type": "continuous", "range": [0, 10]}
    pid = live.api("POST", "/projects", json=body).json()["id"]
    watched = Watched(browser, live.base, DESKTOP)
    try:
        page = sign_in(watched, live.base, "owner", "owner-pass-1")
        page.goto(f"{live.base}/#/projects/{pid}/dashboard")
        page.wait_for_selector("#st-rating_tolerance")
        assert page.input_value("#st-rating_tolerance") == ""
        page.fill("#st-rating_tolerance", "50")
        page.click("button:has-text('Save settings')")
        assert "width" in page.inner_text("#st-rating_tolerance-error")
        page.fill("#st-rating_tolerance", "0.5")
        page.click("button:has-text('Save settings')")
        page.wait_for_selector("#dash-settings .ok:has-text('Saved')")
        assert live.api("GET", f"/projects/{pid}").json()["rating_tolerance"] == 0.5
        page.fill("#st-rating_tolerance", "")
        page.click("button:has-text('Save settings')")
        page.wait_for_function(
            f"() => fetch('/api/v1/projects/{pid}', {{credentials: 'same-origin'}})"
            ".then(r => r.json()).then(p => p.rating_tolerance === null)"
        )
        assert live.api("GET", f"/projects/{pid}").json()["rating_tolerance"] is None
    finally:
        watched.close()
    watched.check()


def test_the_annotators_table_says_why_detection_flagged_someone(live: Live, browser: Any) -> None:
    """A spammer flagged by detection shows "flagged automatically" and the reason; an annotator
    the owner flagged shows "flagged" alone."""
    body = {"name": "Flags", "task_type": "classification", "classes": DIGITS}
    pid = live.api("POST", "/projects", json=body).json()["id"]
    for name in ("spammy", "marked"):
        r = live.api("POST", "/users", json={"username": name, "password": f"{name}-password"})
        assert r.status_code == 201
    reason = "answers look random: agreement with the crowd kappa 0.03 (at most 0.11) over 84 answers"
    with live.db.write() as s:
        ids = dict(s.execute(select(User.username, User.id)).all())
        s.add(ProjectMember(project_id=pid, user_id=ids["spammy"], active=True, flagged=True, flag_auto=True,
                            flag_reason=reason))  # fmt: skip
        s.add(ProjectMember(project_id=pid, user_id=ids["marked"], active=True, flagged=True))
    watched = Watched(browser, live.base, DESKTOP)
    try:
        page = sign_in(watched, live.base, "owner", "owner-pass-1")
        page.goto(f"{live.base}/#/projects/{pid}/dashboard")
        page.wait_for_selector("#dash-annotators th[scope=row]:has-text('spammy')")
        spammy = page.locator("#dash-annotators tr:has(th:has-text('spammy'))").inner_text()
        marked = page.locator("#dash-annotators tr:has(th:has-text('marked'))").inner_text()
        assert "flagged automatically" in spammy and reason in spammy
        assert "flagged" in marked and "automatically" not in marked and "answers look" not in marked
    finally:
        watched.close()
    watched.check()

"""The annotator's web app in a real browser (Playwright driving Debian's Chromium).

The server runs in-process on a loopback port. An annotator signs up and signs in through the
page, opens a project and labels clips with the keyboard alone; a second one answers 50 clips
while the page measures the time from the answer's key press to the next clip being playable
(recorded in test-artifacts/, not asserted). Any request to another host and any JavaScript
error fails the test. Screenshots of the labelling page at desktop and phone width go to
test-artifacts/ at the repository's root.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.gamification import CANT_TELL_POINTS, POINTS_PER_ANSWER
from listenloop.server import create_app
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()

RECORDINGS = Path(__file__).parent / "fixtures" / "fsdd" / "recordings"
DIGITS = [str(i) for i in range(10)]
N_CLIPS = 60
EXTRA_ARGS = ("--autoplay-policy=no-user-gesture-required", "--mute-audio")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _zip(files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in files:
            z.writestr(path.name, path.read_bytes())
    return buf.getvalue()


class Live:
    """A running server: its base URL and the owner's bearer headers."""

    def __init__(self, base: str, owner: dict[str, str], project_id: int) -> None:
        self.base = base
        self.owner = owner
        self.project_id = project_id

    def answers(self) -> list[dict[str, str]]:
        """Every stored answer of the project (through the owner's API)."""
        r = httpx.get(f"{self.base}/api/v1/projects/{self.project_id}/answers?format=csv", headers=self.owner)
        r.raise_for_status()
        return list(csv.DictReader(io.StringIO(r.text)))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on a free loopback port with an owner and a 60-clip digits project."""
    tmp = tmp_path_factory.mktemp("web")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with serving(app) as base:
        token = httpx.post(f"{base}/api/v1/token", data={"username": "owner", "password": "owner-pass-1"})
        owner = {"Authorization": f"Bearer {token.json()['access_token']}"}
        body = {"name": "Spoken digits", "task_type": "classification", "classes": DIGITS}
        # a generous timeout: the first project imports the learning core (seconds on a busy machine)
        pid = httpx.post(f"{base}/api/v1/projects", headers=owner, json=body, timeout=120).json()["id"]
        clips = sorted(RECORDINGS.glob("*.wav"))[:N_CLIPS]
        r = httpx.post(
            f"{base}/api/v1/projects/{pid}/clips",
            headers=owner,
            files={"archive": ("clips.zip", _zip(clips))},
            timeout=60,
        )
        assert r.status_code == 201 and r.json()["added"] == N_CLIPS, r.text
        yield Live(base, owner, pid)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), shared by the tests of this module."""
    with sync_api.sync_playwright() as p:
        b = launch(p, *EXTRA_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


CONTRAST_JS = """() => {
    // WCAG contrast of every visible text against the nearest opaque background behind it
    const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const bad = [];
    let checked = 0;
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!node.textContent.trim() || !el || !el.getClientRects().length) continue;
        if (el.closest('.visually-hidden, .feedback, [hidden]')) continue;
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden' || style.opacity === '0') continue;
        let bg = null;
        for (let a = el; a; a = a.parentElement) {
            const c = rgb(getComputedStyle(a).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
        }
        bg = bg || [255, 255, 255];
        const [l1, l2] = [lum(rgb(style.color).slice(0, 3)), lum(bg)].sort((x, y) => y - x);
        const ratio = (l1 + 0.05) / (l2 + 0.05);
        checked += 1;
        if (!(ratio >= 4.5)) bad.push(`${node.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)}`);
    }
    return {bad, checked};
}"""


def low_contrast(page: Any) -> list[str]:
    """Texts whose contrast against their background is under 4.5:1."""
    result = page.evaluate(CONTRAST_JS)
    assert result["checked"] > 10, "the contrast check saw no text"
    return list(result["bad"])


def sign_up_and_in(page: Any, base: str, name: str, password: str) -> None:
    """Sign up and sign in through the start page's forms, by keyboard."""
    page.goto(base + "/")
    page.wait_for_selector("html[data-app=ready]")
    page.focus("#signup-username")
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_selector("#nav:not([hidden])")
    assert name in page.inner_text("#who")


def open_label_page(page: Any, project_id: int) -> None:
    """From the project list, follow "Start labelling" by keyboard; wait for the first clip."""
    page.wait_for_selector(f"a[href='#/projects/{project_id}/label']")
    page.focus(f"a[href='#/projects/{project_id}/label']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#label-page[data-ready-task]")


def answer_by_key(page: Any, key: str) -> float | None:
    """Press `key` and wait for the next clip (or for 'nothing to do'); returns data-ready-ms."""
    before = page.get_attribute("#label-page", "data-ready-task")
    page.keyboard.press(key)
    page.wait_for_function(
        """(before) => {
            const p = document.getElementById('label-page');
            return p.dataset.readyTask !== before || p.dataset.state === 'idle';
        }""",
        arg=before,
    )
    ms = page.get_attribute("#label-page", "data-ready-ms")
    return float(ms) if ms is not None else None


def test_start_page_signed_out(live: Live, browser: Any, artifacts: Path) -> None:
    w = Watched(browser, live.base, PHONE)
    try:
        page = w.page
        response = page.goto(live.base + "/")
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        page.wait_for_selector("html[data-app=ready]")
        text = page.inner_text("main")
        assert "listenloop" in text and len(text.split()) > 80
        assert page.is_visible("#signin-form") and page.is_visible("#signup-form")
        assert no_horizontal_scroll(page)
        assert low_contrast(page) == []
        page.screenshot(path=str(artifacts / "start-phone.png"), full_page=True)
        w.check()
    finally:
        w.close()


def test_annotator_labels_ten_clips_by_keyboard(live: Live, browser: Any, artifacts: Path) -> None:
    w = Watched(browser, live.base, DESKTOP)
    try:
        page = w.page
        sign_up_and_in(page, live.base, "alice", "alice-password")
        # signing out and in again works too
        page.click("#signout")
        page.wait_for_selector("#signin-form")
        page.focus("#signin-username")
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type("alice-password")
        page.keyboard.press("Enter")
        page.wait_for_selector("#nav:not([hidden])")

        open_label_page(page, live.project_id)
        assert page.locator(".choice").count() == 10
        page.wait_for_selector("img.spectrogram:not([hidden])")
        keys = ["1", "2", "3", "c", "4", "5", "6", "7", "8", "9"]
        for key in keys:
            answer_by_key(page, key)
        page.wait_for_function("document.getElementById('project-points').textContent !== '0'")
        # 9 answers and one (capped) can't tell: the same points whatever the kind of task
        assert int(page.inner_text("#project-points")) == 9 * POINTS_PER_ANSWER + CANT_TELL_POINTS
        page.keyboard.press("r")  # replay: no error
        page.wait_for_selector("img.spectrogram:not([hidden])")
        page.wait_for_selector(".board-box table")
        page.wait_for_function("document.querySelector('.board-box').innerText.includes('alice')")
        page.wait_for_selector(".badge.earned")
        assert low_contrast(page) == []
        page.screenshot(path=str(artifacts / "label-desktop.png"))

        page.set_viewport_size(PHONE)
        page.wait_for_timeout(200)
        assert no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / "label-phone.png"), full_page=True)

        page.goto(live.base + "/#/leaderboard")
        page.wait_for_selector("#overall-title")
        assert "alice" in page.inner_text("table.board")
        assert no_horizontal_scroll(page)
        w.check()
    finally:
        w.close()
    mine = [a for a in live.answers() if a["annotator"] == "alice"]
    assert len(mine) == 10
    # digit classes: each digit key answers its own class; C says can't tell
    assert sorted(a["answer"] for a in mine) == sorted(["1", "2", "3", "can't tell", *"456789"])


# the signed-in annotator's points in the labelling page's leaderboard (undefined: not on it)
MY_BOARD_POINTS = "document.querySelector('.board-box tr.me td:nth-of-type(3)')?.textContent"


def undo_to(page: Any, action: Any, task: str) -> None:
    """Undo with `action` (a key press or a click) and wait until the page shows task `task` again."""
    page.wait_for_selector("#undo:not([disabled])")
    action()
    page.wait_for_function(
        """(task) => {
            const p = document.getElementById('label-page');
            return p.dataset.readyTask === task && p.dataset.state === 'ready';
        }""",
        arg=task,
    )


def test_annotator_takes_an_answer_back_with_backspace_and_the_button(
    live: Live, browser: Any, artifacts: Path
) -> None:
    """Backspace (and the Undo button) take the last answer back; the same clip comes again, the
    new answer is the one stored."""
    w = Watched(browser, live.base, DESKTOP)
    try:
        page = w.page
        sign_up_and_in(page, live.base, "undoer", "undoer-password")
        open_label_page(page, live.project_id)
        assert page.is_disabled("#undo")  # nothing to take back yet
        assert "Backspace" in page.inner_text("#keys-help")
        first = page.get_attribute("#label-page", "data-ready-task")
        answer_by_key(page, "3")
        second = page.get_attribute("#label-page", "data-ready-task")
        assert second != first
        # the leaderboard (loaded after a first answer) shows the answer's points
        page.wait_for_function(f"() => Number({MY_BOARD_POINTS}) > 0")
        undo_to(page, lambda: page.keyboard.press("Backspace"), first)
        assert page.is_disabled("#undo")  # one step back only
        page.wait_for_function("document.getElementById('project-points').textContent === '0'")
        # the leaderboard takes the points back too (it showed the answer's points)
        page.wait_for_function(f"() => [undefined, '0'].includes({MY_BOARD_POINTS})")
        answer_by_key(page, "5")
        assert page.get_attribute("#label-page", "data-ready-task") == second  # the one after comes back
        answer_by_key(page, "6")
        page.wait_for_selector("#undo:not([disabled])")
        page.screenshot(path=str(artifacts / "label-undo.png"))
        undo_to(page, lambda: page.click("#undo"), second)
        answer_by_key(page, "7")
        w.check()
    finally:
        w.close()
    mine = {a["task_id"]: a["answer"] for a in live.answers() if a["annotator"] == "undoer"}
    assert mine == {first: "5", second: "7"}


def test_rating_and_tags_by_keyboard_and_owner_links(live: Live, browser: Any) -> None:
    """A continuous project (slider: arrows, Enter) and a multi-label one (number keys toggle,
    Enter submits); the owner's list links to the dashboard and to a new project."""
    clips = sorted(RECORDINGS.glob("*.wav"))[-3:]
    ids = {}
    for body in (
        {"name": "Loudness", "task_type": "continuous", "range": [0, 10]},
        {"name": "Tags", "task_type": "multilabel", "classes": ["speech", "noise", "music"]},
    ):
        r = httpx.post(f"{live.base}/api/v1/projects", headers=live.owner, json=body)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        up = httpx.post(
            f"{live.base}/api/v1/projects/{pid}/clips",
            headers=live.owner,
            files={"archive": ("c.zip", _zip(clips))},
            timeout=60,
        )
        assert up.status_code == 201, up.text
        ids[body["task_type"]] = pid
    w = Watched(browser, live.base, PHONE)
    try:
        page = w.page
        sign_up_and_in(page, live.base, "dora", "dora-password")
        open_label_page(page, ids["continuous"])
        assert page.get_attribute("#rating", "min") == "0" and page.get_attribute("#rating", "max") == "10"
        for _ in range(5):
            page.keyboard.press("ArrowRight")  # 5.0 -> 5.5 in steps of 0.1
        answer_by_key(page, "Enter")
        page.keyboard.press(" ")  # Space replays
        page.goto(f"{live.base}/#/projects/{ids['multilabel']}/label")
        page.wait_for_selector("#label-page[data-ready-task] .toggle")
        page.keyboard.press("1")
        page.keyboard.press("3")
        page.keyboard.press("3")
        page.keyboard.press("3")
        assert page.get_attribute(".toggle[data-value=music]", "aria-pressed") == "true"
        answer_by_key(page, "Enter")
        answer_by_key(page, "?")
        assert no_horizontal_scroll(page)
        w.check()
    finally:
        w.close()

    def stored(pid: int) -> list[str]:
        r = httpx.get(f"{live.base}/api/v1/projects/{pid}/answers?format=csv", headers=live.owner)
        return [a["answer"] for a in csv.DictReader(io.StringIO(r.text)) if a["annotator"] == "dora"]

    assert [float(a) for a in stored(ids["continuous"])] == [pytest.approx(5.5)]
    assert stored(ids["multilabel"]) == ["speech|music", "can't tell"]

    o = Watched(browser, live.base, DESKTOP)
    try:
        page = o.page
        page.goto(live.base + "/")
        page.wait_for_selector("html[data-app=ready]")
        page.fill("#signin-username", "owner")
        page.fill("#signin-password", "owner-pass-1")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"a[href='#/projects/{live.project_id}/dashboard']")
        assert page.is_visible("a[href='#/new']")
        o.check()
    finally:
        o.close()


def measure_answers(page: Any, n: int) -> tuple[list[float], list[list[float]]]:
    """Answer `n` clips by number keys; the key-to-playable times and their breakdowns."""
    timings: list[float] = []
    breakdown: list[list[float]] = []
    for i in range(n):
        ms = answer_by_key(page, DIGITS[i % 10])
        if ms is not None and page.get_attribute("#label-page", "data-state") != "idle":
            timings.append(ms)
            parts = page.get_attribute("#label-page", "data-ready-breakdown") or ""
            breakdown.append([float(x) if x else float("nan") for x in parts.split(",")])
    return timings, breakdown


def timing_report(timings: list[float], breakdown: list[list[float]], what: str) -> dict[str, Any]:
    """Median, p90 and max of the times, and the median time to each step."""
    ordered = sorted(timings)
    steps = ["answer_stored", "next_leased", "audio_fetched", "playable"]
    return {
        "what": what,
        "answers": len(timings),
        "median_ms": round(statistics.median(timings), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
        # median ms from the key press to: answer stored, next task leased, audio fetched, canplay
        "median_breakdown_ms": {
            step: round(statistics.median(col), 1)
            for step, col in zip(steps, zip(*breakdown, strict=True), strict=True)
        },
        "timings_ms": [round(t, 1) for t in timings],
    }


@pytest.mark.parametrize(
    ("annotator", "warm"),
    [("bob", False), ("carol", True)],
    ids=["first-listener", "spectrograms-cached"],
)
def test_answer_to_next_clip_playable_over_50_answers(
    live: Live, browser: Any, artifacts: Path, annotator: str, warm: bool
) -> None:
    """50 answers by key; the time from each key press to the next clip's `canplay` is recorded.

    first-listener: most spectrograms are drawn on the server on their first request, while
    the next answers come in. spectrograms-cached: every spectrogram was drawn before.
    """
    if warm:
        for clip_id in range(1, N_CLIPS + 1):
            url = f"{live.base}/api/v1/clips/{clip_id}/spectrogram.png"
            assert httpx.get(url, headers=live.owner, timeout=30).status_code == 200
    w = Watched(browser, live.base, DESKTOP)
    try:
        page = w.page
        sign_up_and_in(page, live.base, annotator, f"{annotator}-password")
        open_label_page(page, live.project_id)
        timings, breakdown = measure_answers(page, 50)
        w.check()
    finally:
        w.close()
    assert len(timings) >= 49  # the 50th answer may leave nothing to do
    what = "spectrograms cached" if warm else "first listener (spectrograms drawn on demand)"
    report = timing_report(timings, breakdown, what)
    name = "answer-to-playable-warm.json" if warm else "answer-to-playable-cold.json"
    (artifacts / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"answer key -> next clip playable, {what}: median {report['median_ms']} ms over {len(timings)}")
    assert len([a for a in live.answers() if a["annotator"] == annotator]) == 50

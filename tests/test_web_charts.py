"""The dashboard's charts and the pages' phone layout in a real browser (Playwright, Chromium).

Each check failed before its fix: bars rose above the top tick, pool-map points at the edge
were drawn half outside the frame, the model's first learning-curve point was hidden under the
passive arm's, sign-in sat 700 px down on a phone, and the annotator table was cut at phone
width with names broken mid-word.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api_support import wavs, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.server import create_app
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
LONG_NAME = "annotator_with_a_rather_long_name_2024"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The app with an owner and a project that two annotators (one long-named) answered."""
    tmp = tmp_path_factory.mktemp("charts")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    # a generous timeout: the first project imports the learning core (seconds on a busy machine)
    with serving(app) as base, httpx.Client(timeout=120) as web:
        token = web.post(f"{base}/api/v1/token", data={"username": "owner", "password": "owner-pass-1"})
        owner = {"Authorization": f"Bearer {token.json()['access_token']}"}
        body = {"name": "digits", "task_type": "classification", "classes": [str(i) for i in range(10)]}
        pid = web.post(f"{base}/api/v1/projects", headers=owner, json=body).json()["id"]
        files = {"archive": ("a.zip", zip_of(wavs(6)))}
        assert web.post(f"{base}/api/v1/projects/{pid}/clips", headers=owner, files=files).is_success
        for name in (LONG_NAME, "bob"):
            web.post(f"{base}/api/v1/users", json={"username": name, "password": f"{name}-password"})
            tok = web.post(f"{base}/api/v1/token", data={"username": name, "password": f"{name}-password"})
            h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            task = web.get(f"{base}/api/v1/projects/{pid}/next", headers=h).json()
            web.post(f"{base}/api/v1/tasks/{task['task_id']}/answer", headers=h, json={"answer": "1"})
        yield base, pid


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def _charts_page(browser: Any, base: str) -> Watched:
    w = Watched(browser, base, DESKTOP)
    w.page.goto(base + "/")
    w.page.evaluate("async () => { window.charts = await import('/static/charts.js'); }")
    return w


def test_the_top_tick_covers_the_tallest_bar(browser: Any, live: tuple[str, int]) -> None:
    w = _charts_page(browser, live[0])
    got = w.page.evaluate(
        """() => {
          const fig = charts.barChart({title: 't', desc: 'd', summary: 's', categories: ['a', 'b', 'c'],
            series: [{name: 'crowd', values: [9, 4, 10]}, {name: 'seed', values: [3, 0, 0]}], width: 600});
          document.body.append(fig);
          const ticks = [...fig.querySelectorAll('g.axis text[text-anchor=end]')]
            .map((t) => Number(t.textContent));
          const grid = [...fig.querySelectorAll('g.axis line.grid')].map((l) => Number(l.getAttribute('y1')));
          const tops = [...fig.querySelectorAll('g.bars rect')].map((r) => Number(r.getAttribute('y')));
          return {top: Math.max(...ticks), topY: Math.min(...grid), barY: Math.min(...tops)};
        }"""
    )
    assert got["top"] >= 12 and got["barY"] >= got["topY"] - 0.01, got
    w.check()
    w.close()


def test_pool_map_points_are_drawn_inside_the_frame(browser: Any, live: tuple[str, int]) -> None:
    w = _charts_page(browser, live[0])
    outside = w.page.evaluate(
        """() => {
          const points = [];
          for (let i = 0; i < 60; i++) {
            points.push({x: Math.sin(i) * 5, y: Math.cos(i * 1.3) * 3, group: i % 12, ring: i % 5 === 0});
          }
          points.push({x: -9, y: 0, group: 0, ring: true}, {x: 9, y: 0, group: 1});
          points.push({x: 0, y: -7, group: 2}, {x: 0, y: 7, group: 3});
          const groups = Array.from({length: 12},
            (_, i) => ({name: String(i), colour: charts.colour(i), shape: charts.marker(i)}));
          const fig = charts.scatterPlot({title: 't', desc: 'd', summary: 's', points, groups, width: 600});
          document.body.append(fig);
          const frame = fig.querySelector('rect.plot-area').getBBox();
          const marks = [...fig.querySelectorAll('g.points > *')];
          return marks.filter((m) => {
            const b = m.getBBox(), half = Number(m.getAttribute('stroke-width')) / 2;
            return b.x - half < frame.x || b.y - half < frame.y
              || b.x + b.width + half > frame.x + frame.width
              || b.y + b.height + half > frame.y + frame.height;
          }).length + (marks.length === 64 ? 0 : 1000);
        }"""
    )
    assert outside == 0
    w.check()
    w.close()


def test_the_models_first_point_is_not_hidden_by_the_passive_arm(browser: Any, live: tuple[str, int]) -> None:
    w = _charts_page(browser, live[0])
    fill = w.page.evaluate(
        """() => {
          const fig = charts.lineChart({title: 't', desc: 'd', summary: 's', yDomain: [0, 1], width: 600,
            series: [
            {name: 'UAR', points: [{x: 14, y: 0.47}, {x: 30, y: 0.62}]},
            {name: 'passive', points: [{x: 14, y: 0.47}, {x: 18, y: 0.52}]}]});
          document.body.append(fig);
          const first = fig.querySelector('g[data-series=UAR] circle');
          first.scrollIntoView({block: 'center'});
          const box = first.getBoundingClientRect();
          const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
          return [top.getAttribute('fill'), charts.colour(0)];
        }"""
    )
    assert fill[0] == fill[1], fill
    w.check()
    w.close()


def test_sign_in_is_on_the_first_screen_of_a_phone(browser: Any, live: tuple[str, int]) -> None:
    w = Watched(browser, live[0], PHONE)
    w.page.goto(live[0] + "/")
    button = w.page.get_by_role("button", name="Sign in").bounding_box()
    assert button is not None and button["y"] + button["height"] <= PHONE["height"], button
    assert w.page.locator("#landing-title").bounding_box()["y"] < button["y"]  # the title still comes first
    w.check()
    w.close()


def test_the_annotator_table_fits_a_phone_and_keeps_names_whole(browser: Any, live: tuple[str, int]) -> None:
    base, pid = live
    w = Watched(browser, base, PHONE)
    page = w.page
    page.goto(base + "/")
    page.fill("#signin-username", "owner")
    page.fill("#signin-password", "owner-pass-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_function(
        "() => !document.getElementById('landing') || !document.getElementById('landing').isConnected"
    )
    page.goto(f"{base}/#/projects/{pid}/dashboard")
    page.wait_for_selector("table.annotators th.who")
    fits = page.evaluate(
        """() => { const s = document.querySelector('#dash-annotators .table-scroll');
                   return s.scrollWidth <= s.clientWidth + 1; }"""
    )
    assert fits, "the annotator table is wider than its card at phone width"
    assert page.locator("table.annotators td[data-label='Trust']").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#dash-annotators").screenshot(path=str(ARTIFACTS / "annotators-phone.png"))
    page.set_viewport_size(DESKTOP)
    lines = page.evaluate(
        f"""() => {{ const th = [...document.querySelectorAll('table.annotators th.who')]
                      .find((t) => t.textContent === '{LONG_NAME}');
                    const range = document.createRange(); range.selectNodeContents(th);
                    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size; }}"""
    )
    assert lines == 1, "a name is broken over lines at desktop width"
    w.check()
    w.close()

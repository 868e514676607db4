"""Screenshots of the web app during a running campaign (`listenloop bench campaign --screenshots DIR`).

Debian's Chromium (`/usr/bin/chromium`, or LISTENLOOP_CHROMIUM) driven by Playwright for
Python, headless, with no browser download: the owner's dashboard and an annotator's
labelling page, at desktop and phone width, and the owner's clip browser with a clip open at
desktop width (`clip-browser.png`), taken while the simulated crowd works.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from listenloop.errors import ListenloopError

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
# The clip browser: finished clips, least confident first (what an owner reviews), the first opened.
CLIP_BROWSER = ("status=done,low_agreement&sort=confidence&limit=25", (1280, 1200))


def chromium_path() -> str:
    """The Chromium to drive; a clear error when Playwright or the browser is missing."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise ListenloopError("--screenshots needs Playwright for Python: pip install -e '.[dev]'") from None
    path = os.environ.get("LISTENLOOP_CHROMIUM", CHROMIUM)
    if not Path(path).is_file():
        raise ListenloopError(
            f"--screenshots needs Chromium at {path} (Debian: .ci/chromium, or set LISTENLOOP_CHROMIUM)"
        )
    return path


async def _signed_in(browser: Any, base: str, who: tuple[str, str], size: tuple[int, int]) -> Any:
    """A new browser context of `size`, signed in as `who` (the session cookie)."""
    context = await browser.new_context(viewport={"width": size[0], "height": size[1]})
    user, password = who
    form = {"username": user, "password": password}
    # the pages' own header: cookie sign-in needs it (login CSRF)
    signed = await context.request.post(
        f"{base}/api/v1/session", form=form, headers={"X-Requested-With": "listenloop"}
    )
    if not signed.ok:
        await context.close()
        raise ListenloopError(f"screenshots: {user} cannot sign in ({signed.status})")
    return context


async def _clip_browser(browser: Any, base: str, pid: int, owner: tuple[str, str], out: Path) -> Path:
    """The owner's clip browser with its first clip open, at desktop width: `out/clip-browser.png`."""
    query, size = CLIP_BROWSER
    context = await _signed_in(browser, base, owner, size)
    try:
        page = await context.new_page()
        await page.goto(f"{base}/#/projects/{pid}/clips?{query}")
        await page.wait_for_selector(".dashboard-root[data-ready=true]", timeout=30_000)
        if not await page.locator("button.clip-open").count():  # early: nothing finished yet
            await page.goto(f"{base}/#/projects/{pid}/clips")
            await page.wait_for_selector(".dashboard-root[data-ready=true] button.clip-open", timeout=30_000)
        await page.click("table.clips-table button.clip-open")
        await page.wait_for_selector("#clip-detail audio", timeout=30_000)
        await page.wait_for_function(
            "() => document.querySelector('#clip-detail img.clip-spectrogram').complete", timeout=30_000
        )
        await page.wait_for_timeout(500)
        path = out / "clip-browser.png"
        await page.screenshot(path=str(path))  # the screen as the owner sees it (the panel scrolls)
        return path
    finally:
        await context.close()


async def take_screenshots(
    base: str, pid: int, owner: tuple[str, str], annotator: tuple[str, str], out: Path
) -> list[Path]:
    """The dashboard (as `owner`) and the labelling page (as `annotator`) at each of SIZES, and the
    clip browser (as `owner`) at desktop width, in `out`."""
    from playwright.async_api import async_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    pages = (
        ("dashboard", owner, f"#/projects/{pid}/dashboard", "svg"),
        # ready: a clip to hear; idle: nothing left for this annotator (late in a campaign)
        (
            "label",
            annotator,
            f"#/projects/{pid}/label",
            "#label-page[data-state=ready], #label-page[data-state=idle]",
        ),
    )
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), headless=True, args=LAUNCH_ARGS)
        try:
            for name, (user, password), route, ready in pages:
                for size, (width, height) in SIZES.items():
                    context = await _signed_in(browser, base, (user, password), (width, height))
                    page = await context.new_page()
                    await page.goto(f"{base}/{route}")
                    await page.wait_for_selector(ready, timeout=30_000)
                    await page.wait_for_timeout(1500)  # charts and the playhead settle
                    path = out / f"{name}-{size}.png"
                    await page.screenshot(path=str(path), full_page=True)
                    saved.append(path)
                    await context.close()
            saved.append(await _clip_browser(browser, base, pid, owner, out))
        finally:
            await browser.close()
    return saved

"""The API documentation page (/docs) in a real browser (Playwright driving Debian's Chromium).

FastAPI publishes OpenAPI 3.1; a Swagger UI that reads only 3.0 shows "Unable to render this
definition" instead of the operations. The page must list the annotator's operations, show no
render error, raise no JavaScript error and ask nothing of another host (it must work offline).
"""

from __future__ import annotations

from pathlib import Path

from listenloop.server import create_app
from web_support import ARTIFACTS, Watched, launch, require_browser, serving

sync_api = require_browser()


def test_docs_page_renders_the_operations_offline(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'listenloop.db'}", tmp_path / "data", learning=False)
    with serving(app) as base, sync_api.sync_playwright() as p:
        browser = launch(p)
        watched = Watched(browser, base, {"width": 1280, "height": 900})
        page = watched.page
        page.goto(f"{base}/docs")
        # Swagger UI draws one block per operation once it has read /openapi.json.
        page.locator(".opblock").first.wait_for()
        text = page.inner_text("body")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "docs.png"))
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        watched.check()
        watched.close()
        browser.close()
    assert "Unable to render" not in text and "valid version field" not in text, text[:500]
    cleaned = [p.replace("\u200b", "") for p in paths]  # Swagger UI breaks long paths with zero-width spaces
    assert "/api/v1/projects/{project_id}/next" in cleaned, cleaned
    assert "/api/v1/tasks/{task_id}/answer" in cleaned, cleaned

"""The web app: `GET /` serves the single page, `/static/...` its scripts, styles and images.

Every asset comes from this server (no CDN), and the page carries a Content-Security-Policy
that allows nothing else: no inline scripts or styles, no other host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

WEB = Path(__file__).resolve().parents[2] / "web"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    """The single-page app (its routes live after the #)."""
    return FileResponse(WEB / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


class _Static(StaticFiles):
    """StaticFiles with the page's headers: revalidate (the files change with each release),
    no sniffing, and the same Content-Security-Policy."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        for name, value in PAGE_HEADERS.items():  # /static/index.html gets the page's policy too
            response.headers.setdefault(name, value)
        return response


def mount_pages(app: FastAPI) -> None:
    """Add `/` and `/static` to `app` (after /static/swagger-ui, which must match first)."""
    app.include_router(router)
    app.mount("/static", _Static(directory=WEB), name="static")

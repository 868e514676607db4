"""The OpenAPI page at /docs, with Swagger UI served from this server (swagger-ui-bundle).

FastAPI's default page loads Swagger UI from a CDN: blank offline, and a request to another
host from every browser that opens it. The platform makes no requests beyond its own host.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/static/swagger-ui"
router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI over /openapi.json, every asset from this server."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="listenloop API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


def mount_docs(app: FastAPI) -> None:
    """Add /docs and its static assets to `app` (create it with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")
    app.include_router(router)

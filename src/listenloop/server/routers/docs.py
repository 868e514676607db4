"""The OpenAPI page at /docs: Swagger UI 5 served from this server (the fastapi-offline wheel's copy).

FastAPI's default page loads Swagger UI from a CDN: blank offline, and a request to another
host from every browser that opens it. The platform makes no requests beyond its own host, so
the page's scripts and styles come from the `fastapi_offline` package's static folder (Swagger
UI 5 reads the OpenAPI 3.1 that FastAPI publishes; Swagger UI 4 could not), and the page's
Content-Security-Policy lets the browser fetch nothing from anywhere else.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/swagger-ui"
# fastapi-offline ships swagger-ui-bundle.js, swagger-ui.css and favicon.png in this folder.
ASSET_DIR = str(files("fastapi_offline") / "static")
# The page's one inline script starts Swagger UI, which sets inline styles; nothing from another host.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'self'; frame-ancestors 'none'"
)
router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI over /openapi.json, every asset from this server."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="listenloop API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        # No badge from the online validator (validator.swagger.io): nothing leaves this host.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = CSP
    return page


def mount_docs(app: FastAPI) -> None:
    """Add /docs and its static assets to `app` (create it with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="swagger-ui")
    app.include_router(router)

"""Security headers on every response: API, pages, static files, docs and errors alike.

A route that sets its own (the pages' and /docs' Content-Security-Policy) keeps it; every
other response gets the strict defaults below. A pure ASGI middleware: it only adds a few
header pairs at the start of a response, so the annotators' hot path pays next to nothing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON, audio and images need no sources at all; nobody may frame any of it.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", DEFAULT_CSP.encode()),
)


class SecurityHeadersMiddleware:
    """Adds HEADERS to each HTTP response that lacks them (a route's own value wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in HEADERS if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

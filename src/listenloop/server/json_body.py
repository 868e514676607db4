"""JSON request bodies parse strictly: only what RFC 8259 calls JSON, with finite numbers.

Python's `json` module reads `NaN`, `Infinity` and `-Infinity` (not JSON) and turns a number like
`1e400` into infinity; either then reached the engine or a response and gave a 500. Every API
route uses `StrictJSONRoute`, whose request refuses them at the parse: a 422 (`json_invalid`)
that says why, the same as any body that is not JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class _NotJSONError(ValueError):
    """A number that JSON does not have (raised inside the parse, reported as a JSONDecodeError)."""


def _constant(name: str) -> Any:
    raise _NotJSONError(f"{name} is not a JSON number: send a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSONError(f"{text[:40]} is too large for a number")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # over Python's digit limit for int()
        raise _NotJSONError("an integer with too many digits") from None


def loads_strict(body: bytes | str) -> Any:
    """`json.loads` that refuses NaN, Infinity and numbers beyond float range (JSONDecodeError)."""
    try:
        return json.loads(body, parse_constant=_constant, parse_float=_finite, parse_int=_integer)
    except _NotJSONError as exc:
        doc = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise json.JSONDecodeError(str(exc), doc, 0) from None


class StrictJSONRequest(Request):
    """A request whose `json()` is `loads_strict`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by `loads_strict` (422 for NaN, Infinity, 1e400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict

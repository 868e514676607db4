"""Routes whose body is a project config answer 422 with every problem at once.

FastAPI's own 422 lists pydantic's raw messages, and a check between fields or of the learning
core's names came one at a time. Here each problem is `{loc, field, msg, type}`: `loc` as
FastAPI gives it (["body", "redundancy", "max"]), `field` the dotted setting, `msg` a plain
sentence (`engine/config.py` holds the sentences, the same the web form shows).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from listenloop.engine.config import config_problems, patch_problems
from listenloop.server.json_body import StrictJSONRoute


def problem_detail(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Engine problems (at a setting) as a 422 body's `detail` (at the request body)."""
    return [{**p, "loc": ["body", *p["loc"]]} for p in problems]


def problems_response(problems: list[dict[str, Any]]) -> JSONResponse:
    """422 with every problem."""
    return JSONResponse({"detail": problem_detail(problems)}, status_code=422)


class ConfigBodyRoute(StrictJSONRoute):
    """An APIRoute whose request body is a ProjectConfig: an invalid body gets every problem,
    the learning core's names included (checked off the event loop: they import scikit-learn)."""

    problems = staticmethod(config_problems)  # every problem of the body as sent

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                others = [
                    {"loc": list(e["loc"]), "field": ".".join(map(str, e["loc"][1:])), "msg": e["msg"],
                     "type": e["type"]}
                    for e in exc.errors()
                    if not e["loc"] or e["loc"][0] != "body"
                ]  # fmt: skip
                bad_json = [e for e in exc.errors() if e["type"] == "json_invalid"]
                if bad_json:
                    why = (bad_json[0].get("ctx") or {}).get("error")
                    msg = "The body is not valid JSON" + (f" ({why})" if why else "")
                    msg += ": send the settings as a JSON object."
                    return problems_response([{"loc": [], "field": "", "msg": msg, "type": "json_invalid"}])
                body = await run_in_threadpool(self.problems, exc.body)
                if not body and not others:
                    raise
                return JSONResponse({"detail": others + problem_detail(body)}, status_code=422)

        return handle


class PatchBodyRoute(ConfigBodyRoute):
    """The same for a ProjectPatch body (PATCH /projects/{id}); the merged configuration's own
    problems come from the route as a ProblemsError."""

    problems = staticmethod(patch_problems)

"""A yardstick for `listenloop bench serve --yardstick`: the annotator API's endpoints doing no work.

It answers the bench's requests from memory (no database, no accounts, no checks) on the same
uvicorn settings as `listenloop serve`, so the same load against it shows what the machine and
the load client allow: latency that even this server cannot beat is not the platform's.
Run as `python -m listenloop.bench.yardstick --port P`.
"""

from __future__ import annotations

import argparse
import itertools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def make_app() -> Starlette:
    """The yardstick app: every task it hands out is answered once, and the export lists them."""
    ids = itertools.count(1)
    answered: list[int] = []

    async def ok(request: Request) -> Response:
        await request.body()
        return JSONResponse(
            {"id": 1, "added": 0, "rejected": [], "access_token": "t", "token_type": "bearer"}
        )

    async def next_task(request: Request) -> Response:
        task = next(ids)
        return JSONResponse(
            {
                "task_id": task,
                "audio_url": f"/api/v1/tasks/{task}/audio",
                "spectrogram_url": f"/api/v1/tasks/{task}/spectrogram.png",
                "question": {"type": "classification", "text": "What do you hear?", "choices": []},
            }
        )

    async def answer(request: Request) -> Response:
        await request.body()
        answered.append(int(request.path_params["task"]))
        return JSONResponse({"points": 1}, status_code=201)

    async def answers(request: Request) -> Response:
        rows = "".join(f"{t},{t},a,x,regular,\n" for t in answered)
        return PlainTextResponse("task_id,clip_id,annotator,answer,kind,answered_at\n" + rows)

    async def docs(request: Request) -> Response:
        return PlainTextResponse("yardstick")

    return Starlette(
        routes=[
            Route("/api/v1/projects/{project:int}/next", next_task),
            Route("/api/v1/tasks/{task:int}/answer", answer, methods=["POST"]),
            Route("/api/v1/projects/{project:int}/answers", answers),
            Route("/api/v1/token", ok, methods=["POST"]),
            Route("/api/v1/users", ok, methods=["POST"]),
            Route("/api/v1/projects", ok, methods=["POST"]),
            Route("/api/v1/projects/{project:int}/clips", ok, methods=["POST"]),
            Route("/docs", docs),
        ]
    )


def main() -> None:
    import uvicorn

    from listenloop.server.http_protocol import guarded_protocol
    from listenloop.settings import settings

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    s = settings()  # the same connection limits as `listenloop serve`
    uvicorn.run(
        make_app(),
        host=a.host,
        port=a.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=s.keep_alive_seconds,
        http=guarded_protocol(s.max_header_bytes, s.read_timeout),
    )


if __name__ == "__main__":
    main()

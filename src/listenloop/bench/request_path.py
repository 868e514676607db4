"""The request path's CPU per `next` + `answer` pair, in-process through the ASGI app.

No network, no uvicorn, no load client: the app is called directly with ASGI messages, one
request at a time, so the figure is what FastAPI, the engine and the database cost per pair
(the `listenloop bench serve` figures add uvicorn, the sockets and a load client).
Run as `python -m listenloop.bench.request_path [--pairs 1500] [--profile FILE]`: a project
of the demo's 300 clips on a SQLite file in a temporary folder, 16 annotators in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

ANNOTATORS = 16


async def _call(app: Any, method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request straight into the ASGI app: (status, body)."""
    from listenloop.server.warm_up import asgi_call

    return await asgi_call(app, method, path, [(b"authorization", f"Bearer {token}".encode())], body)


def _run(pairs: int, folder: Path, profile: Path | None) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from listenloop.bench.serve import clips_zip, setup_project, token_of
    from listenloop.demo import DEMO_DIR
    from listenloop.engine.accounts import create_user, hash_password
    from listenloop.server.app import create_app

    app = create_app(f"sqlite:///{folder / 'bench.db'}", folder / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass"), "owner")
    blob, classes = clips_zip(DEMO_DIR / "recordings")
    with TestClient(app) as c:  # the set-up through the API, as `bench serve` does it
        pid, tokens = setup_project(
            c, token_of(c, "owner", "owner-pass"), "request path", blob, classes, ANNOTATORS
        )
        return asyncio.run(_time_pairs(app, pid, tokens, classes, pairs, profile))


async def _time_pairs(
    app: Any, pid: int, tokens: list[str], classes: list[str], pairs: int, profile: Path | None
) -> dict[str, float]:
    """`pairs` next + answer pairs, the annotators in turn: CPU and wall time per pair."""
    rng = random.Random(0)
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    done = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(pairs):
        tok = tokens[i % len(tokens)]
        status, raw = await _call(app, "GET", f"/api/v1/projects/{pid}/next", tok)
        if status != 200:
            continue
        task = json.loads(raw)["task_id"]
        answer = json.dumps({"answer": rng.choice(classes)}).encode()
        status, raw = await _call(app, "POST", f"/api/v1/tasks/{task}/answer", tok, answer)
        if status != 201:
            raise RuntimeError(f"answer: {status} {raw[:200]!r}")
        done += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    if not done:
        raise RuntimeError("no task was handed out")
    return {
        "pairs": done,
        "cpu_ms_per_pair": round(1000 * cpu / done, 2),
        "wall_ms_per_pair": round(1000 * wall / done, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1500, help="next + answer pairs to time (default 1500)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the timed loop here")
    a = ap.parse_args()
    if a.pairs < 1:
        ap.error("--pairs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="listenloop-request-path-") as tmp:
        result = _run(a.pairs, Path(tmp), a.profile)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

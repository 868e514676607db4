"""The annotators' fast lane (server/fast_lane.py): it serves plainly valid `next`/`answer`
requests of known bearer tokens exactly as the routes would, and hands everything else, errors
included, to the full application."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

import listenloop.server.fast_lane as lane
from api_support import annotator, count_transactions, login, wavs, zip_of
from listenloop.server.security_headers import HEADERS
from listenloop.server.warm_up import asgi_call, warm_up

DIGITS = [str(i) for i in range(10)]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many requests the lane itself served, by kind."""
    calls = {"next": 0, "answer": 0}
    real_next, real_answer = lane.lease_next_in, lane.submit_answer

    def next_(*args: Any, **kwargs: Any) -> Any:
        calls["next"] += 1
        return real_next(*args, **kwargs)

    def answer(*args: Any, **kwargs: Any) -> Any:
        calls["answer"] += 1
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(lane, "lease_next_in", next_)
    monkeypatch.setattr(lane, "submit_answer", answer)
    return calls


def _project(c: TestClient) -> tuple[dict[str, str], int]:
    oh = login(c, "owner", "owner-pass-1")
    r = c.post(
        "/api/v1/projects",
        headers=oh,
        json={"name": "d", "task_type": "classification", "classes": DIGITS, "control_rate": 0.0},
    )
    pid = r.json()["id"]
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(6)))})
    assert r.status_code == 201, r.text
    return oh, pid


def test_lane_serves_what_the_route_serves(
    client: TestClient, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, pid = _project(client)
    a1 = annotator(client, "ann")  # a fresh token is known at once: its first next takes the lane
    fast = client.get(f"/api/v1/projects/{pid}/next", headers=a1)
    assert fast.status_code == 200 and counted["next"] == 1
    # a token this process does not know (another worker logged them in) is read once, here
    client.app.state.token_cache.drop(a1["Authorization"].split()[1])
    again = client.get(f"/api/v1/projects/{pid}/next", headers=a1)
    assert counted["next"] == 2 and client.app.state.token_cache.get(a1["Authorization"].split()[1])
    with monkeypatch.context() as m:  # the same call, by the route
        m.setattr(lane.AnnotatorFastLane, "_who", lambda self, scope: None)
        slow = client.get(f"/api/v1/projects/{pid}/next", headers=a1)
    assert counted["next"] == 2
    assert fast.json() == again.json() == slow.json()  # the open lease again, as the same JSON
    for name in ("content-type", *(h.decode() for h, _ in HEADERS)):
        assert fast.headers[name] == slow.headers[name]
    tid = fast.json()["task_id"]
    r = client.post(f"/api/v1/tasks/{tid}/answer", headers=a1, json={"answer": "3"})
    assert r.status_code == 201 and counted["answer"] == 1
    assert set(r.json()) == {"task_id", "points", "total_points", "level"} and r.json()["task_id"] == tid
    assert r.headers["x-frame-options"] == "DENY"


def test_lane_hands_errors_to_the_application(client: TestClient, counted: dict[str, int]) -> None:
    _, pid = _project(client)
    a1, a2 = annotator(client, "ann"), annotator(client, "bob")
    tid = client.get(f"/api/v1/projects/{pid}/next", headers=a1).json()["task_id"]
    url = f"/api/v1/tasks/{tid}/answer"
    assert client.post(url, headers=a2, json={"answer": "1"}).status_code == 403  # the engine refused
    assert client.post(url, headers=a1, json={"answer": "eleven"}).status_code == 422
    for body in ({"answer": True}, {"answer": "1", "more": 1}, {"answer": None}, ["1"]):
        r = client.post(url, headers=a1, json=body)
        assert r.status_code == 422, (body, r.text)
    r = client.post(url, headers={**a1, "content-type": "application/json"}, content=b'{"answer": 1e400}')
    assert r.status_code == 422 and "too large" in r.text
    assert client.post(url, headers={**a1, "content-type": "text/plain"}, content=b"x").status_code == 422
    assert client.post(url, headers=a1, json={"answer": "1"}).status_code == 201
    assert client.post(url, headers=a1, json={"answer": "2"}).status_code == 409
    assert client.post("/api/v1/tasks/99999/answer", headers=a1, json={"answer": "1"}).status_code == 404
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.get(f"/api/v1/projects/{pid}/next", headers=bad).status_code == 401
    assert client.get("/api/v1/projects/999/next", headers=a1).status_code == 404
    assert client.get(f"/api/v1/projects/{pid}/next?ahead=maybe", headers=a1).status_code == 422
    assert counted["answer"] >= 2  # the lane tried, then passed them on


def test_lane_replays_a_body_it_read_in_parts(client: TestClient) -> None:
    """A body the lane read chunk by chunk reaches the application whole."""
    _, pid = _project(client)
    a1 = annotator(client, "ann")
    tid = client.get(f"/api/v1/projects/{pid}/next", headers=a1).json()["task_id"]
    app = client.app.build_middleware_stack()  # the same stack the server runs
    parts = [b'{"answer": ', b'"eleven"}']
    body = b"".join(parts)
    headers = [
        (b"authorization", a1["Authorization"].encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/v1/tasks/{tid}/answer",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": client.app,
    }
    messages = [
        {"type": "http.request", "body": parts[0], "more_body": True},
        {"type": "http.request", "body": parts[1], "more_body": False},
    ]
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    asyncio.run(app(scope, receive, send))
    assert out[0]["status"] == 422  # "eleven" is no class: the route saw the whole body
    assert b"eleven" in b"".join(m.get("body", b"") for m in out[1:])


def test_warm_up_walks_the_routes(client: TestClient) -> None:
    assert asyncio.run(warm_up(client.app)) == [404, 401, 401]


def test_an_unknown_token_is_read_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane reads a token it does not know; a refused one gets the application's 401
    without the application reading the tokens table again."""
    import listenloop.server.deps as deps

    _, pid = _project(client)
    reads: list[str] = []
    real = lane.principal_for_token

    def counted_read(session: Any, token: str) -> Any:
        reads.append(token)
        return real(session, token)

    monkeypatch.setattr(lane, "principal_for_token", counted_read)
    monkeypatch.setattr(deps, "principal_for_token", counted_read)
    r = client.get(f"/api/v1/projects/{pid}/next", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "invalid or expired token" in r.text
    assert reads == ["not-a-token"]


def test_requests_that_arrive_together_share_one_transaction(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crowd's simultaneous `next`s, then answers, each commit as one group (server/group_commit.py),
    and every one is served as it would be alone."""
    _, pid = _project(client)
    crowd = [annotator(client, f"ann{i}") for i in range(6)]
    app = client.app.build_middleware_stack()
    opened = count_transactions(client.app.state.db, monkeypatch)

    async def call(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
        auth = [(b"authorization", headers["Authorization"].encode())]
        status, raw = await asgi_call(app, method, path, auth, body)
        return status, json.loads(raw) if raw else None

    async def crowd_asks() -> list[tuple[int, Any]]:
        path = f"/api/v1/projects/{pid}/next"
        return await asyncio.gather(*(call("GET", path, h) for h in crowd))

    nexts = asyncio.run(crowd_asks())
    assert [status for status, _ in nexts] == [200] * 6
    tasks = [body["task_id"] for _, body in nexts]
    assert len(set(tasks)) == 6 and len(opened) == 1

    async def crowd_answers() -> list[tuple[int, Any]]:
        body = b'{"answer": "3"}'
        return await asyncio.gather(
            *(call("POST", f"/api/v1/tasks/{t}/answer", h, body) for t, h in zip(tasks, crowd, strict=True))
        )

    answers = asyncio.run(crowd_answers())
    assert [status for status, _ in answers] == [201] * 6 and len(opened) == 2
    oh = login(client, "owner", "owner-pass-1")
    stored = client.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text
    assert all(str(t) in stored for t in tasks)


def test_an_idle_annotators_poll_opens_no_transaction(
    client: TestClient, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once `next` found nothing, the annotator's polls for the next second are answered from
    memory: no transaction, no turn at the writers' gate."""
    _, pid = _project(client)
    a1 = annotator(client, "ann")
    url = f"/api/v1/projects/{pid}/next"
    for _ in range(50):  # every clip once (and any check question that comes with them)
        r = client.get(url, headers=a1)
        if r.status_code != 200:
            break
        answer = client.post(f"/api/v1/tasks/{r.json()['task_id']}/answer", headers=a1, json={"answer": "1"})
        assert answer.status_code == 201
    assert r.status_code == 204
    opened = count_transactions(client.app.state.db, monkeypatch)
    served = counted["next"]
    assert client.get(url, headers=a1).status_code == 204
    assert counted["next"] == served and not opened

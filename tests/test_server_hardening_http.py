"""What a stranger can send the server over HTTP (issue 15, findings 1, 2, 3, 9 and 10).

Body limits belong to the route (1 MiB, the upload limit on upload routes only, after the owner
check), a 422 never echoes the body, request heads are bounded in size and time, JSON bodies
hold finite numbers only, and ratings are plain decimal numbers. The size and time bounds are
checked against a real `listenloop serve` with raw sockets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api_support import annotator, login, wait_http, wavs, zip_of
from listenloop.bench.serve import free_port
from listenloop.crowd.aggregation.continuous import mean_ratings, parse_rating
from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.uploads import UploadLimits
from listenloop.errors import ListenloopError
from listenloop.server import create_app
from listenloop.server.http_protocol import guarded_protocol

READ_TIMEOUT = 2  # the served server's --read-timeout in these tests


# ---------------------------------------------------------------- in-process app


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    pool = tmp_path / "pool"
    pool.mkdir()
    limits = UploadLimits(max_upload_bytes=3_000_000)
    app = create_app(
        f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "data", limits=limits, learning=False, import_root=pool
    )
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, login(c, "owner", "owner-pass-1"), pool


def _project(c: TestClient, h: dict[str, str], **body: object) -> int:
    r = c.post("/api/v1/projects", headers=h, json={"name": "p", **body})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_multipart_content_type_does_not_raise_a_json_routes_limit(app_client) -> None:
    c, _, _ = app_client
    body = b"--x\r\n" + b"A" * 2_000_000  # under the upload limit, over the JSON routes' 1 MiB
    r = c.post("/api/v1/users", content=body, headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413, r.status_code
    assert len(r.content) < 200  # the refusal, not the body echoed back


def test_a_chunked_body_is_cut_at_the_routes_limit(app_client) -> None:
    c, _, _ = app_client

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(40):
            yield b"a" * 65536

    r = c.post("/api/v1/users", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_upload_routes_take_the_upload_limit_only_with_an_owner(app_client) -> None:
    c, oh, _ = app_client
    pid = _project(c, oh, task_type="classification", classes=["a", "b"])
    pad = {"pad.wav": os.urandom(1_500_000)}  # not audio (rejected), but it makes the zip big
    archive = zip_of({**wavs(2), **pad})  # over 1 MiB, under the 3 MB upload limit
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", archive)})
    assert r.status_code == 201, r.text
    ah = annotator(c, "ann")
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=ah, files={"archive": ("a.zip", archive)})
    assert r.status_code == 403
    r = c.post(f"/api/v1/projects/{pid}/clips", files={"archive": ("a.zip", archive)})
    assert r.status_code == 401
    big = zip_of({**wavs(2), "pad.wav": os.urandom(3_500_000)})
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", big)})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_validation_errors_do_not_echo_the_input(app_client) -> None:
    c, oh, _ = app_client
    marker = "SECRET-BODY-" + "x" * 100
    r = c.post("/api/v1/users", json={"username": marker, "password": marker * 20})
    assert r.status_code == 422
    assert "SECRET-BODY" not in r.text and "input" not in r.text, r.text
    r = c.post("/api/v1/tasks/1/answer", headers=oh, json={"answer": {"x": marker}})
    assert r.status_code == 422 and "SECRET-BODY" not in r.text, r.text


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_json_numbers_are_422_everywhere(app_client, number: str) -> None:
    c, oh, _ = app_client
    json_h = {"content-type": "application/json"}
    r = c.post("/api/v1/users", content=f'{{"username": "u", "password": {number}}}', headers=json_h)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", r.text
    body = f'{{"name": "p", "task_type": "continuous", "range": [0, {number}]}}'
    r = c.post("/api/v1/projects", content=body, headers={**oh, **json_h})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"][0]["msg"], r.text
    pid = _project(c, oh, task_type="classification", classes=["a", "b"])
    body = f'{{"redundancy": {{"tau": {number}}}}}'
    r = c.patch(f"/api/v1/projects/{pid}", content=body, headers={**oh, **json_h})
    assert r.status_code == 422, r.text
    r = c.post("/api/v1/tasks/1/answer", content=f'{{"answer": {number}}}', headers={**oh, **json_h})
    assert r.status_code == 422, r.text


def test_huge_integers_in_settings_are_422(app_client) -> None:
    c, oh, _ = app_client
    base = {"name": "p", "task_type": "classification", "classes": ["a", "b"]}
    for field, value in [
        ("budget", 2**70),
        ("retrain_every", 2**64),
        ("redundancy", {"min": 2**65, "max": 2**66}),
        ("passive_share", 10**400),
    ]:
        r = c.post("/api/v1/projects", headers=oh, json={**base, field: value})
        assert r.status_code == 422, (field, r.status_code, r.text)
    pid = _project(c, oh, **base)
    r = c.patch(f"/api/v1/projects/{pid}", headers=oh, json={"budget": 2**70, "retrain_every": 2**64})
    assert r.status_code == 422, r.text


def test_a_range_must_have_a_finite_width(app_client) -> None:
    c, oh, _ = app_client
    body = {"name": "p", "task_type": "continuous", "range": [-1e308, 1e308]}
    r = c.post("/api/v1/projects", headers=oh, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "range", r.text
    pid = _project(c, oh, task_type="continuous", range=[0, 10])
    r = c.patch(f"/api/v1/projects/{pid}", headers=oh, json={"range": [-1e308, 1e308]})
    assert r.status_code == 422, r.text
    assert c.get(f"/api/v1/projects/{pid}/dashboard", headers=oh).status_code == 200


def test_a_manifest_path_over_the_name_limit_is_rejected_not_a_500(app_client) -> None:
    c, oh, pool = app_client
    (pool / "ok.wav").write_bytes(next(iter(wavs(1).values())))
    pid = _project(c, oh, task_type="classification", classes=["a", "b"])
    long_name = "a" * 300 + ".wav"
    deep = "/".join(["d" * 200] * 30) + "/x.wav"
    manifest = f"file\nok.wav\n{long_name}\n{deep}\n".encode()
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"manifest": ("m.csv", manifest)})
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 1 and len(r.json()["rejected"]) == 2, r.text


@pytest.mark.parametrize("answer", ['"1_0"', '"٥"', '"５"', "true", '"0x5"', '"nan"', '"inf"', '"5e999"'])
def test_continuous_answers_are_plain_decimal_numbers(app_client, answer: str) -> None:
    c, oh, _ = app_client
    pid = _project(c, oh, task_type="continuous", range=[0, 10])
    assert c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(8)))})
    ah = annotator(c, "ann")
    task = c.get(f"/api/v1/projects/{pid}/next", headers=ah).json()["task_id"]
    json_h = {**ah, "content-type": "application/json"}
    r = c.post(f"/api/v1/tasks/{task}/answer", content=f'{{"answer": {answer}}}', headers=json_h)
    assert r.status_code == 422, r.text
    assert c.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text.count("\n") == 1
    for good in ("2.5", "3", " 4 ", "1e0"):
        r = c.post(f"/api/v1/tasks/{task}/answer", json={"answer": good}, headers=ah)
        assert r.status_code == 201, (good, r.text)
        task = c.get(f"/api/v1/projects/{pid}/next", headers=ah).json()["task_id"]
    r = c.post(f"/api/v1/tasks/{task}/answer", json={"answer": 7}, headers=ah)
    assert r.status_code == 201, r.text


def test_aggregate_reads_ratings_with_the_same_parser() -> None:
    for text in ("1_0", "٥", "５", "nan", "inf", "0x5", "1e400", ""):
        with pytest.raises(ValueError):
            parse_rating(text)
        table = pd.DataFrame({"item": ["a", "a"], "worker": ["w1", "w2"], "label": ["3", text]})
        with pytest.raises(ListenloopError, match="line 3"):
            mean_ratings(table)
    table = pd.DataFrame({"item": ["a", "a"], "worker": ["w1", "w2"], "label": ["3", " 4.5 "]})
    assert mean_ratings(table)["a"] == pytest.approx(3.75)


# ---------------------------------------------------------------- a real `listenloop serve`


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`listenloop serve --read-timeout 2` on a free port, with an owner o / owner-pass-1: (base, port)."""
    tmp = tmp_path_factory.mktemp("served")
    db = f"sqlite:///{tmp / 'l.db'}"
    cli = [sys.executable, "-m", "listenloop"]
    subprocess.run(
        [*cli, "user", "create", "--username", "o", "--password", "owner-pass-1", "--db", db],
        cwd=tmp,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    serve = [*cli, "serve", "--port", str(port), "--db", db, "--data", str(tmp / "d")]
    proc = subprocess.Popen(
        [*serve, "--read-timeout", str(READ_TIMEOUT)],
        cwd=tmp,
        env={**os.environ, "LISTENLOOP_LEARNING": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base)
        yield base, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _reply(s: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection or `timeout` passes (b"" if nothing)."""
    s.settimeout(timeout)
    got = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := s.recv(65536):
            got += chunk
            if b"\r\n\r\n" in got and b"content-length: 0" not in got.lower():
                s.settimeout(1)
    return got


def _closed(s: socket.socket, timeout: float) -> bool:
    """True when the server closes the connection within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def _token(base: str) -> str:
    r = httpx.post(f"{base}/api/v1/token", data={"username": "o", "password": "owner-pass-1"}, timeout=30)
    return r.json()["access_token"]


def test_an_upload_is_refused_before_its_body_is_read(served) -> None:
    base, port = served
    pid = httpx.post(
        f"{base}/api/v1/projects",
        json={"name": "p", "task_type": "classification", "classes": ["a", "b"]},
        headers={"Authorization": f"Bearer {_token(base)}"},
        timeout=30,
    ).json()["id"]
    head = (
        f"POST /api/v1/projects/{pid}/clips HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 104857600\r\n{auth}\r\n"
    )
    # no token: 401 at once, with none of the 100 MiB body sent
    with _connect(port) as s:
        t0 = time.monotonic()
        s.sendall(head.format(auth="").encode())
        reply = _reply(s, 5)
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
        assert time.monotonic() - t0 < 3
    # an owner whose body is over the upload limit: 413 at once
    with _connect(port) as s:
        big = head.replace("104857600", str(4 << 30)).format(auth=f"Authorization: Bearer {_token(base)}\r\n")
        s.sendall(big.encode())
        reply = _reply(s, 5)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_an_oversized_request_head_gets_431_and_others_are_served(served) -> None:
    base, port = served
    with _connect(port) as s:
        s.sendall(b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, refused = 0, False
        t0 = time.monotonic()
        try:
            while sent < (8 << 20) and time.monotonic() - t0 < 10:
                s.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        reply = _reply(s, 5)
        assert refused or reply, "the server kept reading an endless header"
        assert not reply or reply.startswith(b"HTTP/1.1 431"), reply[:200]
        assert sent < (4 << 20), f"the server read {sent} bytes of one header"
    t0 = time.monotonic()
    assert httpx.get(f"{base}/api/v1/session", timeout=10).status_code == 200
    assert time.monotonic() - t0 < 2


def test_a_half_sent_head_is_closed_after_the_read_timeout(served) -> None:
    _, port = served
    with _connect(port) as s:
        s.sendall(b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < READ_TIMEOUT + 6:  # one more header byte every 0.3 s: slowloris
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.3)
            try:
                if s.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
            closed = True  # the 408 came
            break
        assert closed, "a trickling request head was never closed"
        assert READ_TIMEOUT - 0.5 < time.monotonic() - t0 < READ_TIMEOUT + 5


def test_a_paused_body_is_closed_after_the_read_timeout(served) -> None:
    _, port = served
    with _connect(port) as s:
        s.sendall(
            b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username": '
        )
        t0 = time.monotonic()
        assert _closed(s, READ_TIMEOUT + 6), "a request whose body stopped was never closed"
        assert time.monotonic() - t0 >= READ_TIMEOUT - 0.5


def test_an_idle_connection_between_requests_is_kept(served) -> None:
    _, port = served
    with _connect(port) as s:
        s.sendall(b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _reply(s, 5).startswith(b"HTTP/1.1 200")
        time.sleep(READ_TIMEOUT + 1)  # idle longer than the read timeout: the keep-alive (75 s) rules
        s.sendall(b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _reply(s, 5).startswith(b"HTTP/1.1 200")


def test_a_new_connection_that_sends_nothing_is_closed_after_the_keep_alive() -> None:
    """uvicorn arms its keep-alive only after a response: a connection that never sent a byte
    stayed open for good. (serve's keep-alive is 75 s; here 1 s, on uvicorn with the same protocol.)"""

    async def app(scope, receive, send) -> None:  # never reached
        raise AssertionError(scope)

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=guarded_protocol(max_head_bytes=65536, read_timeout=30),
        timeout_keep_alive=1,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with _connect(port) as s:
            t0 = time.monotonic()
            assert _closed(s, 6), "an idle new connection was never closed"
            assert 0.5 < time.monotonic() - t0 < 5
    finally:
        server.should_exit = True
        thread.join(timeout=10)

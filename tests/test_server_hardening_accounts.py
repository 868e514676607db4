"""Issue 15, accounts: login throttling and a bounded hashing gate (4), login CSRF and the cookie
`next` (8), the banner's password and owner-only files (13), security headers and members-only
status (14), common passwords, password change and ending other sessions (15)."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api_support import annotator, login, wait_http, wavs, zip_of
from listenloop.bench.serve import free_port
from listenloop.engine import accounts
from listenloop.server.login_guard import HashGate, LoginThrottle

PAGES = {"X-Requested-With": "listenloop"}


def _token(c: TestClient, user: str, password: str) -> httpx.Response:
    return c.post("/api/v1/token", data={"username": user, "password": password})


def _project(c: TestClient, oh: dict[str, str], n_clips: int = 3) -> int:
    body = {"name": "digits", "task_type": "classification", "classes": [str(i) for i in range(10)]}
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    r = c.post(
        f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(n_clips)))}
    )
    assert r.status_code == 201, r.text
    return pid


# ---- 4: throttling and the hashing gate ----


def test_failed_logins_are_throttled_per_account_with_retry_after(client: TestClient) -> None:
    client.app.state.login_throttle = LoginThrottle(account_limit=3, address_limit=100)
    annotator(client, "ann")
    for _ in range(3):
        assert _token(client, "ann", "wrong-password").status_code == 401
    r = _token(client, "ann", "ann-password")  # the right password too: a refusal tells nothing
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 15 * 60
    s = client.post("/api/v1/session", headers=PAGES, data={"username": "ann", "password": "ann-password"})
    assert s.status_code == 429 and "retry-after" in s.headers
    # an unknown name is throttled the same way (no telling who exists)
    for _ in range(3):
        assert _token(client, "nobody-here", "wrong-password").status_code == 401
    assert _token(client, "nobody-here", "wrong-password").status_code == 429
    # other accounts from the same address still sign in; success does not count
    assert _token(client, "owner", "owner-pass-1").status_code == 200
    assert _token(client, "owner", "owner-pass-1").status_code == 200


def test_failed_logins_are_throttled_per_address(client: TestClient) -> None:
    client.app.state.login_throttle = LoginThrottle(account_limit=100, address_limit=3)
    for name in ("a1", "a2", "a3"):
        assert _token(client, name, "wrong-password").status_code == 401
    r = _token(client, "owner", "owner-pass-1")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_throttle_window_counts_attempts_in_flight_and_forgets_old_ones() -> None:
    now = [1000.0]
    throttle = LoginThrottle(account_limit=2, address_limit=10, window=60, clock=lambda: now[0])
    first = throttle.begin("ann", "10.0.0.1")
    throttle.begin("ann", "10.0.0.1")  # both still running: parallel guesses count at once
    with pytest.raises(HTTPException) as refused:
        throttle.begin("ann", "10.0.0.1")
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "60"}
    throttle.succeeded(first)  # a right password is forgiven
    throttle.begin("ann", "10.0.0.2")
    now[0] += 61  # the window slid past every failure
    for _ in range(2):
        throttle.begin("ann", "10.0.0.1")


def test_hash_gate_bounds_concurrency_and_its_queue() -> None:
    gate = HashGate(slots=2, queue=3, wait=0.5)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work() -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        return "ok"

    async def main() -> list[object]:
        tasks = [asyncio.ensure_future(gate.run(work)) for _ in range(8)]
        await asyncio.sleep(0.2)
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert peak[0] == 2  # never more than the slots at once
    refused = [r for r in results if isinstance(r, HTTPException)]
    assert results.count("ok") == 5 and len(refused) == 3  # 2 ran, 3 waited, 3 refused at once
    assert all(r.status_code == 429 and r.headers == {"Retry-After": "1"} for r in refused)

    async def starved() -> None:  # a waiter whose slot never frees in time gets 429 too
        slow = HashGate(slots=1, queue=1, wait=0.1)
        hold = threading.Event()
        first = asyncio.ensure_future(slow.run(hold.wait, 2))
        await asyncio.sleep(0.05)
        with pytest.raises(HTTPException):
            await slow.run(str, 1)
        hold.set()
        await first

    asyncio.run(starved())


def test_every_password_hash_goes_through_the_gate(client: TestClient) -> None:
    calls: list[str] = []
    gate = client.app.state.hash_gate

    class Counting(HashGate):
        async def run(self, fn, *args):  # type: ignore[no-untyped-def]
            calls.append(fn.__name__)
            return await gate.run(fn, *args)

    client.app.state.hash_gate = Counting()
    h = annotator(client, "ann")  # registration hashes, login verifies
    client.post("/api/v1/session", headers=PAGES, data={"username": "nobody-here", "password": "wrong-pass"})
    body = {"current_password": "ann-password", "new_password": "a-new-long-secret"}
    assert client.post("/api/v1/users/me/password", headers=h, json=body).status_code == 200
    assert calls == [
        "hash_password",
        "verify_password",
        "verify_password",
        "verify_password",
        "hash_password",
    ]


def test_unknown_user_costs_a_hash_like_a_wrong_password() -> None:
    digest = accounts.hash_password("ann-password")
    runs = 3

    def timed(stored: str | None) -> float:
        start = time.perf_counter()
        for _ in range(runs):
            assert not accounts.verify_password(stored, "wrong-password")
        return (time.perf_counter() - start) / runs

    known, unknown = timed(digest), timed(None)
    assert unknown > 0.5 * known  # the dummy hash runs: no fast path that tells who exists


# ---- 8: login CSRF and the cookie-only next ----


def test_session_sign_in_and_cookie_next_need_the_header(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh)
    annotator(client, "ann")
    form = {"username": "ann", "password": "ann-password"}
    refused = client.post("/api/v1/session", data=form)  # what a cross-site form would send
    assert refused.status_code == 403 and "X-Requested-With" in refused.json()["detail"]
    assert "set-cookie" not in refused.headers
    assert client.post("/api/v1/session", data=form, headers=PAGES).status_code == 200
    # the cookie alone: a GET that leases needs the header too; plain reads do not
    assert client.get(f"/api/v1/projects/{pid}/next").status_code == 403
    assert client.get(f"/api/v1/projects/{pid}").status_code == 200
    assert client.get(f"/api/v1/projects/{pid}/next", headers=PAGES).status_code == 200
    # bearer clients are unchanged: no header needed anywhere
    client.cookies.clear()
    bearer = login(client, "ann", "ann-password")
    assert client.get(f"/api/v1/projects/{pid}/next", headers=bearer).status_code == 200


# ---- 13: the banner and owner-only files ----


def test_serve_hides_the_db_password_and_keeps_files_to_its_owner(tmp_path: Path, database_url: str) -> None:
    cli = [sys.executable, "-m", "listenloop"]
    password = ""
    if database_url.startswith("postgresql"):
        url = make_url(database_url)
        # the throwaway server trusts loopback and ignores a password: give the URL one to hide
        password = url.password or "pg-secret-4711"
        database_url = url.set(password=password).render_as_string(hide_password=False)
    env = {**os.environ, "LISTENLOOP_LEARNING": "0"}
    created = subprocess.run(
        [*cli, "user", "create", "--role", "owner", "--username", "o", "--password", "owner-pass-1",
         "--db", database_url],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    data, port = tmp_path / "data", free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--db", database_url, "--data", str(data)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base)
        with httpx.Client(base_url=base, timeout=60) as c:
            r = c.post("/api/v1/token", data={"username": "o", "password": "owner-pass-1"})
            oh = {"Authorization": f"Bearer {r.json()['access_token']}"}
            body = {"name": "d", "task_type": "classification", "classes": ["0", "1"]}
            pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
            files = {"archive": ("a.zip", zip_of(wavs(2)))}
            assert c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    banner = log.read_text()
    assert "listenloop serving on" in banner
    assert re.search(r"data .+, [1-9][0-9]* workers?$", banner.splitlines()[0]), banner  # how many serve
    if password:
        assert f":{password}@" not in banner and password not in banner and "***" in banner, banner
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    written = [p for p in data.rglob("*") if p.is_file()]
    assert written, "no audio was stored"
    shared = [(str(p), oct(stat.S_IMODE(p.stat().st_mode))) for p in written if p.stat().st_mode & 0o077]
    assert not shared, shared
    if database_url.startswith("sqlite"):
        db_files = list(tmp_path.glob("listenloop.db*"))
        assert db_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in db_files), db_files


# ---- 14: security headers and members-only status ----


def test_security_headers_on_every_response(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")

    @client.app.get("/boom-for-test")
    async def boom() -> None:
        raise RuntimeError("a bug")

    quiet = TestClient(client.app, raise_server_exceptions=False)
    responses = {
        "api 200": client.get("/api/v1/users/me", headers=oh),
        "api 401": client.get("/api/v1/projects"),
        "api 404": client.get("/api/v1/projects/999", headers=oh),
        "api 422": client.post("/api/v1/users", json={"username": 1}),
        "route 404": client.get("/no/such/page"),
        "405": client.delete("/api/v1/users/me", headers=oh),
        "static": client.get("/static/app.js"),
        "static 404": client.get("/static/no-such.js"),
        "openapi": client.get("/openapi.json"),
        "page": client.get("/"),
        "docs": client.get("/docs"),
        "500": quiet.get("/boom-for-test"),
    }
    for what, r in responses.items():
        csp = r.headers.get("content-security-policy", "")
        assert r.headers.get("x-content-type-options") == "nosniff", what
        assert "frame-ancestors 'none'" in csp or r.headers.get("x-frame-options") == "DENY", what
        assert r.headers.get("referrer-policy"), what
        assert csp, what
    assert responses["500"].status_code == 500
    # the routes' own policies are kept: the page's and Swagger UI's (which needs its inline script)
    assert "script-src 'self' 'unsafe-inline'" in responses["docs"].headers["content-security-policy"]
    assert "media-src 'self' blob:" in responses["page"].headers["content-security-policy"]


def test_status_is_for_members_only(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh)
    ah = annotator(client, "ann")
    refused = client.get(f"/api/v1/projects/{pid}/status", headers=ah)
    assert refused.status_code == 403 and "member" in refused.json()["detail"]
    assert client.get(f"/api/v1/projects/{pid}", headers=ah).status_code == 200  # seeing it is fine
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 200  # joins
    assert client.get(f"/api/v1/projects/{pid}/status", headers=ah).status_code == 200
    assert client.get(f"/api/v1/projects/{pid}/status", headers=oh).status_code == 200


# ---- 15: passwords ----


def test_short_common_and_username_passwords_are_refused(client: TestClient) -> None:
    for password, why in [
        ("short12", "at least 8"),
        ("password1", "common"),
        ("Qwertyuiop", "common"),  # compared without case
        ("iloveyou2", "common"),
        ("carol-the-great", "username"),
    ]:
        r = client.post("/api/v1/users", json={"username": "carol-the-great", "password": password})
        assert r.status_code == 422 and why in r.json()["detail"], (password, r.text)
    assert len(accounts.common_passwords()) > 8000
    assert all(len(p) >= 8 for p in accounts.common_passwords())
    r = client.post("/api/v1/users", json={"username": "carol", "password": "purple-otter-harbour"})
    assert r.status_code == 201


def test_change_password_needs_the_current_one_and_ends_other_sessions(client: TestClient) -> None:
    client.app.state.login_throttle = LoginThrottle(account_limit=3, address_limit=100)
    here = annotator(client, "ann")
    elsewhere = login(client, "ann", "ann-password")
    client.post("/api/v1/session", headers=PAGES, data={"username": "ann", "password": "ann-password"})
    url = "/api/v1/users/me/password"
    wrong = client.post(
        url, headers=here, json={"current_password": "not-it-at-all", "new_password": "x" * 12}
    )
    assert wrong.status_code == 403
    common = client.post(
        url, headers=here, json={"current_password": "ann-password", "new_password": "password123"}
    )
    assert common.status_code == 422 and "common" in common.json()["detail"]
    assert client.get("/api/v1/users/me", headers=elsewhere).status_code == 200  # nothing changed yet
    r = client.post(
        url, headers=here, json={"current_password": "ann-password", "new_password": "tuba-lantern-9"}
    )
    assert r.status_code == 200 and r.json() == {"ended": 2}  # the other bearer token and the cookie
    assert client.get("/api/v1/users/me", headers=here).status_code == 200  # this session stays
    assert client.get("/api/v1/users/me", headers=elsewhere).status_code == 401
    assert client.get("/api/v1/users/me").status_code == 401  # the cookie session ended too
    assert _token(client, "ann", "ann-password").status_code == 401
    assert _token(client, "ann", "tuba-lantern-9").status_code == 200
    # wrong current passwords are throttled like logins
    for _ in range(2):
        client.post(url, headers=here, json={"current_password": "guess-guess", "new_password": "y" * 12})
    r = client.post(url, headers=here, json={"current_password": "guess-guess", "new_password": "y" * 12})
    assert r.status_code == 429 and "retry-after" in r.headers


def test_end_other_sessions_keeps_this_one(client: TestClient) -> None:
    mine = annotator(client, "ann")
    other = login(client, "ann", "ann-password")
    other_user = annotator(client, "bob")
    # the cookie session of the pages: the header is needed (it is a write)
    client.post("/api/v1/session", headers=PAGES, data={"username": "ann", "password": "ann-password"})
    assert client.post("/api/v1/users/me/sessions/end-others").status_code == 403
    client.cookies.clear()
    r = client.post("/api/v1/users/me/sessions/end-others", headers=mine)
    assert r.status_code == 200 and r.json() == {"ended": 2}
    assert client.get("/api/v1/users/me", headers=mine).status_code == 200
    assert client.get("/api/v1/users/me", headers=other).status_code == 401
    assert client.get("/api/v1/users/me", headers=other_user).status_code == 200  # only ann's


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are a POSIX feature")
def test_hashes_run_at_a_lower_priority_than_requests() -> None:
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    hashing = asyncio.run(HashGate(slots=1).run(nice))
    assert hashing >= min(19, nice() + 5)  # the event loop's requests come first

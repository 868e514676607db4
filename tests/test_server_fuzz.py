"""schemathesis over the OpenAPI schema: no generated request may get a 5xx (owner and annotator tokens),
also when its JSON body carries NaN, Infinity, numbers beyond float range and integers beyond 64 bits
(which JSON generators never produce: `_extreme` puts them into the generated bodies)."""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from listenloop.engine.accounts import create_user, hash_password
from listenloop.server import create_app

RECORDINGS = Path(__file__).parent / "fixtures" / "fsdd" / "recordings"
# Module level, because schemathesis builds its tests from the schema at collection time.
TMP = Path(tempfile.mkdtemp(prefix="listenloop-fuzz-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)
APP = create_app(f"sqlite:///{TMP / 'l.db'}", TMP / "data", learning=False)
HEADERS: dict[str, dict[str, str]] = {}


def _login(c: TestClient, user: str, password: str) -> dict[str, str]:
    r = c.post("/api/v1/token", data={"username": user, "password": password})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _prepare() -> None:
    """An owner, an annotator, a project with clips and a task, so that generated ids can resolve."""
    with APP.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
        create_user(session, "ann", hash_password("ann-pass-12"), "annotator")
    with TestClient(APP) as c:
        owner, ann = _login(c, "owner", "owner-pass-1"), _login(c, "ann", "ann-pass-12")
        body = {"name": "p", "task_type": "classification", "classes": ["a", "b"]}
        pid = c.post("/api/v1/projects", headers=owner, json=body).json()["id"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for p in sorted(RECORDINGS.glob("*.wav"))[:4]:
                z.write(p, p.name)
        c.post(f"/api/v1/projects/{pid}/clips", headers=owner, files={"archive": ("a.zip", buf.getvalue())})
        c.get(f"/api/v1/projects/{pid}/next", headers=ann)
    HEADERS.update(owner=owner, annotator=ann)


_prepare()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _check(case, headers: dict[str, str]) -> None:
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    )


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_as_owner(case) -> None:
    _check(case, HEADERS["owner"])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_as_annotator(case) -> None:
    _check(case, HEADERS["annotator"])


# Numbers a JSON generator never writes: not JSON at all (NaN, Infinity), beyond float range, beyond
# 64 bits, or below the smallest float. Each goes into a generated body as its literal text.
EXTREMES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    str(2**64),
    str(-(2**127)),
    "1" * 400,
]
BODY_SCHEMA = schema.include(method=["POST", "PATCH", "PUT"])
RAW_CLIENT = TestClient(APP, raise_server_exceptions=False)  # sends the text as it is


def _extreme(value: object, draw) -> object:
    """`value` with some of its leaves (every number, and now and then another leaf) replaced by a
    marker `@@N@@` that `_extreme_text` turns into EXTREMES[N]."""
    if isinstance(value, dict):
        return {k: _extreme(v, draw) for k, v in value.items()}
    if isinstance(value, list):
        return [_extreme(v, draw) for v in value]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    choice = draw(st.sampled_from(range(len(EXTREMES))) if number else st.sampled_from([None, None, 0, 3, 6]))
    return value if choice is None else f"@@{choice}@@"


def _extreme_text(body: object) -> str:
    text = json.dumps(body)
    for i, literal in enumerate(EXTREMES):
        text = text.replace(f'"@@{i}@@"', literal)
    return text


@BODY_SCHEMA.parametrize()
@BODY_SCHEMA.given(data=st.data())
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_with_extreme_numbers(case, data) -> None:
    if case.media_type != "application/json" or not isinstance(case.body, dict | list):
        return
    body = _extreme(case.body, data.draw)
    if "@@" not in json.dumps(body):
        body = {**body, "extra": "@@0@@"} if isinstance(body, dict) else [*body, "@@0@@"]
    response = RAW_CLIENT.request(
        case.method,
        case.formatted_path,
        params=case.query or None,
        headers={**HEADERS["owner"], "content-type": "application/json"},
        content=_extreme_text(body),
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {_extreme_text(body)[:200]} -> {response.status_code}: "
        f"{response.text[:300]}"
    )

"""schemathesis over the OpenAPI schema: no generated request may get a 5xx (owner and annotator tokens)."""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

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

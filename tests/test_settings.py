"""The operational settings: one object read from LISTENLOOP_* variables, used by the server,
documented in the README; and no import cycle between the package's parts."""

from __future__ import annotations

import ast
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listenloop.errors import ListenloopError
from listenloop.settings import Settings, as_environment

SRC = Path(__file__).parents[1] / "src" / "listenloop"
README = Path(__file__).parents[1] / "README.md"


def test_defaults_and_values_from_the_environment() -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env(
        {
            "LISTENLOOP_TASK_LEASE_SECONDS": "90",
            "LISTENLOOP_BUSY_TIMEOUT_MS": "1500",
            "LISTENLOOP_MAX_UPLOAD": "2G",
            "LISTENLOOP_PROJECT_QUOTA": "0",
            "LISTENLOOP_LEARNING": "off",
            "LISTENLOOP_SCHEDULER": "",  # empty: not set
            "OTHER": "x",
        }
    )
    assert s.task_lease == timedelta(seconds=90) and s.busy_timeout_ms == 1500
    assert s.max_upload == 2 << 30 and s.project_quota is None and s.learning is False
    assert s.scheduler is None
    assert Settings.from_env(as_environment(s)) == s  # what serve hands its workers reads back equal


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LISTENLOOP_BUSY_TIMEOUT_MS", "soon"),
        ("LISTENLOOP_TASK_LEASE_SECONDS", "-5"),
        ("LISTENLOOP_MAX_UPLOAD", "0"),
        ("LISTENLOOP_PROJECT_QUOTA", "lots"),
        ("LISTENLOOP_LEARNING", "perhaps"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ListenloopError) as exc:
        Settings.from_env({variable: value})
    assert str(exc.value).startswith(f"{variable}: ") and "\n" not in str(exc.value)


def test_the_server_runs_on_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from listenloop.engine.accounts import create_user, hash_password
    from listenloop.server import create_app

    monkeypatch.setenv("LISTENLOOP_BUSY_TIMEOUT_MS", "1234")
    monkeypatch.setenv("LISTENLOOP_TOKEN_LIFETIME_DAYS", "0.5")
    monkeypatch.setenv("LISTENLOOP_JSON_BODY_LIMIT", "2K")
    monkeypatch.setenv("LISTENLOOP_PROJECT_QUOTA", "3M")
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "data", learning=False)
    with app.state.db.read() as session:
        raw = session.connection().connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    assert app.state.limits.project_quota_bytes == 3 << 20
    with TestClient(app) as c:
        r = c.post("/api/v1/token", data={"username": "owner", "password": "owner-pass-1"})
        expires = datetime.fromisoformat(r.json()["expires_at"].rstrip("Z"))
        assert timedelta(hours=11) < expires - datetime.utcnow() < timedelta(hours=13)
        big = {"username": "x" * 3000, "password": "long-enough-1"}
        assert c.post("/api/v1/users", json=big).status_code == 413


def test_the_readme_lists_every_setting() -> None:
    text = README.read_text()
    missing = [
        Settings.variable(name) for name in Settings.model_fields if Settings.variable(name) not in text
    ]
    assert not missing, f"README.md does not document {missing}"


def _package_imports() -> dict[str, set[str]]:
    """Which top-level parts of listenloop (subpackages and modules) each part imports, lazily or not."""
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        part = path.relative_to(SRC).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                bits = name.split(".")
                if bits[0] == "listenloop" and len(bits) > 1 and bits[1] != part:
                    edges.setdefault(part, set()).add(bits[1])
    return edges


def test_no_import_cycle_between_the_package_parts() -> None:
    edges = _package_imports()
    assert "cli" in edges.get("__main__", set())  # the graph is real: it sees the entry point
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < 12:
                visit(nxt, [*path, nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, f"import cycles: {sorted({' -> '.join(c) for c in cycles})}"
    assert "cli" not in edges.get("bench", set()), "bench must not import cli"


def test_the_task_lease_comes_from_the_settings(tmp_path: Path) -> None:
    """`next` leases a task for LISTENLOOP_TASK_LEASE_SECONDS (read when the server starts: here a
    fresh process)."""
    import json
    import os
    import subprocess
    import sys

    script = f"""
import json, sys
from datetime import datetime
sys.path.insert(0, {str(Path(__file__).parent)!r})
from fastapi.testclient import TestClient
from api_support import annotator, login, wavs, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.server import create_app
app = create_app("sqlite:///{tmp_path / "l.db"}", {str(tmp_path / "data")!r}, learning=False)
with app.state.db.write() as s:
    create_user(s, "owner", hash_password("owner-pass-1"), "owner")
with TestClient(app) as c:
    oh = login(c, "owner", "owner-pass-1")
    body = {{"name": "p", "task_type": "binary", "classes": ["a", "b"]}}
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    c.post(f"/api/v1/projects/{{pid}}/clips", headers=oh, files={{"archive": ("a.zip", zip_of(wavs(1)))}})
    task = c.get(f"/api/v1/projects/{{pid}}/next", headers=annotator(c, "ann")).json()
    left = datetime.fromisoformat(task["leased_until"].rstrip("Z")) - datetime.utcnow()
    print(json.dumps(left.total_seconds()))
"""
    env = {**os.environ, "LISTENLOOP_TASK_LEASE_SECONDS": "90"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 60 < json.loads(out.stdout.splitlines()[-1]) <= 90  # not the default 300


def test_the_live_request_path_never_imports_the_learning_service() -> None:
    """engine.live runs in the server's process on every request; engine.learning runs beside it."""
    live = SRC / "engine" / "live"
    assert sorted(p.stem for p in live.glob("*.py")) == [
        "__init__",
        "aggregate",
        "media",
        "settle",
        "tasks",
        "views",
    ]
    found = []
    for path in live.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.startswith("listenloop.engine.learning")]
    assert not found, found

"""Deployment (issue 21): compose.yaml's structure (always) and the Docker image's build (where
Docker runs; skipped with the reason otherwise).

The structure checks are what `docker compose up` relies on and the settings make true: the four
services, the three listenloop ones built from this repository's Dockerfile, every LISTENLOOP_*
variable a setting that `settings.py` (or the feature cache) reads, the database URL pointing at
the postgres service with its user, password and database, the scheduler address at the
dask-scheduler service's port, and the data volume at LISTENLOOP_DATA on the server and the
worker alike (learning rounds read the clips' audio there)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from listenloop.bench.serve import free_port
from listenloop.features.cache import CACHE_ENV
from listenloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {"listenloop", "postgres", "dask-scheduler", "dask-worker"}
KNOWN = {Settings.variable(name) for name in Settings.model_fields} | {CACHE_ENV}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _substitute(value: str, env: dict[str, str] | None = None) -> str:
    """compose's ${VAR:-default} with the default (or `env`'s value)."""
    env = env or {}
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), value)


def _mount(service: dict, volume: str) -> str | None:
    for entry in service.get("volumes", []):
        name, _, target = str(entry).partition(":")
        if name == volume:
            return target.split(":")[0]
    return None


def test_compose_runs_listenloop_with_postgres_and_dask() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) >= SERVICES
    for name in ("listenloop", "dask-scheduler", "dask-worker"):
        build = services[name]["build"]
        assert build["context"] == "." and build["dockerfile"] == "Dockerfile", name
        assert services[name]["image"] == services["listenloop"]["image"]  # one image, built once
    assert services["postgres"]["image"].startswith("postgres:")
    # every LISTENLOOP_* variable is one the code reads
    for name in ("listenloop", "dask-worker"):
        env = services[name].get("environment", {})
        unknown = [k for k in env if k.startswith("LISTENLOOP_") and k not in KNOWN]
        assert not unknown, (name, unknown, sorted(KNOWN))
    env = services["listenloop"]["environment"]
    assert {"LISTENLOOP_DB", "LISTENLOOP_DATA", "LISTENLOOP_SCHEDULER"} <= set(env)
    Settings.from_env({k: _substitute(str(v)) for k, v in env.items() if k in KNOWN})  # they parse
    # the database: the postgres service, its user, password and database
    pg = services["postgres"]["environment"]
    url = make_url(_substitute(env["LISTENLOOP_DB"], {"POSTGRES_PASSWORD": "s3cret"}))
    assert url.drivername == "postgresql+psycopg" and url.host == "postgres" and url.port == 5432
    assert url.username == pg["POSTGRES_USER"] and url.database == pg["POSTGRES_DB"]
    assert url.password == _substitute(pg["POSTGRES_PASSWORD"], {"POSTGRES_PASSWORD": "s3cret"})
    assert services["listenloop"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # the scheduler: the server and the worker reach the scheduler service on the port it listens on
    scheduler = services["dask-scheduler"]["command"]
    port = scheduler[scheduler.index("--port") + 1]
    address = f"tcp://dask-scheduler:{port}"
    assert scheduler[:2] == ["dask", "scheduler"] and env["LISTENLOOP_SCHEDULER"] == address
    worker = services["dask-worker"]["command"]
    assert worker[:2] == ["dask", "worker"] and address in worker
    # the data volume at LISTENLOOP_DATA on the server and the worker, and declared
    data = env["LISTENLOOP_DATA"]
    assert _mount(services["listenloop"], "data") == data == _mount(services["dask-worker"], "data")
    assert services["dask-worker"]["environment"]["LISTENLOOP_DATA"] == data
    assert (
        env[CACHE_ENV].startswith(data + "/")
        and services["dask-worker"]["environment"][CACHE_ENV] == env[CACHE_ENV]
    )
    assert {"data", "pgdata"} <= set(compose["volumes"])
    # the server listens where the port is published
    command = services["listenloop"]["command"]
    assert command[:2] == ["listenloop", "serve"] and command[command.index("--host") + 1] == "0.0.0.0"
    published = services["listenloop"]["ports"][0].split(":")[-1]
    assert command[command.index("--port") + 1] == published


def test_dockerfile_builds_from_this_repository() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and re.search(r"^FROM python:3\.11", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = line.split()
        assert all((ROOT / s).exists() for s in sources), line
    assert re.search(r"^RUN pip install \.$", text, re.M)
    assert re.search(r"^USER listenloop$", text, re.M)  # never as root
    assert 'CMD ["listenloop", "serve"' in text


def test_serve_reads_where_its_state_lives_from_the_environment(tmp_path: Path) -> None:
    """compose.yaml names the database, data folder and scheduler by variable only: `serve` without
    --db, --data or --scheduler must read them (a bad one is refused with its one line)."""
    (tmp_path / "a-file").write_text("x")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTENLOOP_")}
    port = str(free_port())
    for variable, value, words in (
        ("LISTENLOOP_SCHEDULER", "nonsense", "tcp://HOST:PORT"),
        ("LISTENLOOP_DB", "mysql://nobody@nowhere/x", "mysql"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "listenloop", "serve", "--port", port],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            env={**env, variable: value},
        )
        assert out.returncode != 0 and words in out.stderr, (variable, out.stderr)
        assert "serving on" not in out.stdout
    assert not (tmp_path / "listenloop.db").exists()  # the default database was never made


def _docker_reason() -> str | None:
    """Why the image cannot be built here (None: it can)."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the Docker daemon is not reachable ({last})"
    return None


def test_image_builds_and_runs() -> None:
    reason = _docker_reason()
    if reason is not None:
        print(f"skipping the image build: {reason}")
        pytest.skip(f"image build: {reason}")
    tag = f"listenloop-test:{uuid.uuid4().hex[:8]}"
    try:
        build = subprocess.run(
            ["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1800
        )
        assert build.returncode == 0, build.stderr[-3000:]
        run = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", tag, "listenloop", "--help"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0 and "serve" in run.stdout, run.stderr[-2000:]
        who = subprocess.run(
            ["docker", "run", "--rm", tag, "id", "-u"], capture_output=True, text=True, timeout=120
        )
        assert who.stdout.strip() == "1000"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)

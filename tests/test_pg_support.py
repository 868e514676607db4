"""The tests' throwaway PostgreSQL (tests/pg_support.py): found from the system or pip, started on
a free port (as root through an unprivileged user), stopped and deleted; clear errors otherwise."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from pg_support import NoPostgresError, ThrowawayPostgres, find_binaries, pip_binaries, system_binaries


def _refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _check_server(server: ThrowawayPostgres) -> None:
    """Answers on its own port, as a superuser that may create databases; gone after stop()."""
    engine = sa.create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW port")).scalar() == str(server.port)
            conn.execute(sa.text('CREATE DATABASE "probe"'))
            conn.execute(sa.text('DROP DATABASE "probe" WITH (FORCE)'))
    finally:
        engine.dispose()
    server.stop()
    assert _refuses(server.port) and not server.root.exists()


@pytest.mark.parametrize("choice", ["system", "pip"])
def test_a_throwaway_server_starts_on_a_free_port_and_is_gone_after_stop(choice: str) -> None:
    found = system_binaries() if choice == "system" else pip_binaries()
    if found is None:
        pytest.skip(f"no {choice} PostgreSQL programs here (pip: pgserver, in the dev extra)")
    server = ThrowawayPostgres(found).start()
    try:
        assert server.port not in (0, 5432) and "PostgreSQL" in server.version
        if os.geteuid() == 0:  # initdb refuses root: the programs ran as another user
            assert server.root.stat().st_uid != 0
    finally:
        _check_server(server)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the programs as another user")
def test_as_root_programs_the_user_cannot_reach_are_copied(tmp_path: Path) -> None:
    """pgserver's programs in a venv under /root (mode 700): copied, with the wheel's libs folder."""
    found = pip_binaries()
    if found is None:
        pytest.skip("the pip package pgserver is not installed (dev extra)")
    package = found.bin_dir.parent.parent
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    shutil.copytree(package / "pginstall", hidden / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(package.parent / "pgserver.libs", hidden / "pgserver.libs", symlinks=True)
    server = ThrowawayPostgres(find_binaries(str(hidden / "pgserver" / "pginstall" / "bin")))
    server.start()
    try:
        assert server.bin_dir.is_relative_to(server.root)
    finally:
        _check_server(server)


def test_a_folder_without_the_programs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoPostgresError, match=r"_TEST_PG_BINARIES=.*no initdb, pg_ctl, postgres in that"):
        find_binaries(str(tmp_path))


def test_without_pgserver_pip_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(NoPostgresError, match=r"pgserver is not installed \(pip install -e '\.\[dev"):
        find_binaries("pip")

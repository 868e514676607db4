"""A throwaway PostgreSQL server for the tests: its own data folder in a temp dir, a free port on
loopback, trust authentication for the superuser `postgres`, stopped and deleted at the end.

The server programs come from the system (Debian's /usr/lib/postgresql/*/bin, or pg_ctl on PATH)
or from the pip package `pgserver` (in the `dev` extra), which ships a relocatable PostgreSQL:
the README's test command then needs nothing started or installed beforehand. pgserver's own
server API listens on a Unix socket only, so only its programs are used here; one way to start
both kinds keeps the two paths alike.

initdb and postgres refuse to run as root: as root the programs run as an unprivileged user
(`postgres` where it exists, else `nobody`) that owns the temp dir; programs that user cannot
reach (a venv under /root) are copied into the temp dir first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# auto (default): the system's programs, else pgserver's; system; pip; or a folder with pg_ctl.
BINARIES_ENV = "LISTENLOOP_TEST_PG_BINARIES"
PROGRAMS = ("initdb", "pg_ctl", "postgres")


class NoPostgresError(RuntimeError):
    """No PostgreSQL could be found or started; the message says what was tried and why."""


@dataclass(frozen=True)
class Binaries:
    """A folder holding initdb, pg_ctl and postgres, and where it came from (for messages)."""

    bin_dir: Path
    source: str


def _complete(bin_dir: Path) -> bool:
    return all((bin_dir / p).is_file() for p in PROGRAMS)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def system_binaries() -> Binaries | None:
    """The newest /usr/lib/postgresql/*/bin, else the folder of the pg_ctl on PATH."""
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True):
        if _complete(bin_dir):
            return Binaries(bin_dir, f"system ({bin_dir})")
    on_path = shutil.which("pg_ctl")
    if on_path:
        bin_dir = Path(on_path).resolve().parent
        if _complete(bin_dir):
            return Binaries(bin_dir, f"system ({bin_dir})")
    return None


def pip_binaries() -> Binaries | None:
    """The PostgreSQL inside the pip package pgserver, found without importing it (its import
    takes a lock file under the user's runtime dir)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return Binaries(bin_dir, f"pip package pgserver ({bin_dir})") if _complete(bin_dir) else None


def find_binaries(choice: str = "auto") -> Binaries:
    """The programs to run, by `choice` (see BINARIES_ENV); NoPostgresError says what is missing."""
    if choice in ("auto", "system"):
        found = system_binaries()
        if found:
            return found
    if choice in ("auto", "pip"):
        found = pip_binaries()
        if found:
            return found
    if choice not in ("auto", "system", "pip"):
        bin_dir = Path(choice).expanduser()
        if _complete(bin_dir):
            return Binaries(bin_dir, f"{BINARIES_ENV} ({bin_dir})")
        raise NoPostgresError(f"{BINARIES_ENV}={choice}: no {', '.join(PROGRAMS)} in that folder")
    tried = {
        "system": "no /usr/lib/postgresql/*/bin and no pg_ctl on PATH",
        "pip": "the pip package pgserver is not installed (pip install -e '.[dev]')",
    }
    shown = "; ".join(v for k, v in tried.items() if choice in ("auto", k))
    raise NoPostgresError(f"no PostgreSQL programs: {shown}")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """One PostgreSQL server in a temp dir: `start()`, then `admin_url`, then `stop()` (idempotent)."""

    def __init__(self, binaries: Binaries) -> None:
        self.binaries = binaries
        self.bin_dir = binaries.bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="listenloop-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.version = ""
        self._user: pwd.struct_passwd | None = None
        self._running = False

    @property
    def admin_url(self) -> str:
        """A SQLAlchemy URL of the superuser on the maintenance database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _exec(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the temp dir, as the unprivileged user when we are root."""
        extra: dict = {"env": {k: v for k, v in os.environ.items() if not k.startswith("PG")}}
        if self._user is not None:
            extra |= {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        return subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False, **extra
        )

    def _run(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One program of bin_dir."""
        return self._exec([str(self.bin_dir / program), *args], timeout=timeout)

    def _as_unprivileged_user(self) -> None:
        """Root: hand the temp dir to `postgres` (or `nobody`), and copy the programs there when
        that user cannot run them where they are."""
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                self._user = pwd.getpwnam(name)
                break
        else:
            raise NoPostgresError("running as root, and neither a `postgres` nor a `nobody` user exists")
        os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        if not self._user_can_run():
            self.bin_dir = self._copy_programs()

    def _copy_programs(self) -> Path:
        """Copy bin/'s prefix (bin, lib, share) into the temp dir, with the wheel's `NAME.libs`
        folder (pgserver's programs find libpq there, at $ORIGIN/../../../pgserver.libs)."""
        assert self._user is not None
        prefix = self.bin_dir.parent
        package = prefix.parent
        dest = self.root / "programs"
        shutil.copytree(prefix, dest / package.name / prefix.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, dest / libs.name, symlinks=True)
        for path in (dest, *dest.rglob("*")):
            os.lchown(path, self._user.pw_uid, self._user.pw_gid)
        return dest / package.name / prefix.name / self.bin_dir.name

    def _user_can_run(self) -> bool:
        """The user can start postgres (bin/ and lib/) and read share/ beside bin/, if there is one
        (Debian keeps it under /usr/share/postgresql)."""
        share = self.bin_dir.parent / "share"
        probes = [[str(self.bin_dir / "postgres"), "--version"]]
        if share.is_dir():
            probes.append(["ls", str(share)])
        try:
            return all(self._exec(probe).returncode == 0 for probe in probes)
        except OSError:  # the program itself is out of the user's reach
            return False

    def _fail(self, what: str, proc: subprocess.CompletedProcess[str]) -> NoPostgresError:
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        detail = "\n".join(s for s in (proc.stderr.strip(), proc.stdout.strip()[-1000:], log.strip()) if s)
        return NoPostgresError(f"{what} failed ({self.binaries.source}):\n{detail}")

    def start(self, attempts: int = 3) -> ThrowawayPostgres:
        """initdb, then pg_ctl start on a free port (another port if that one was taken meanwhile)."""
        try:
            if os.geteuid() == 0:
                self._as_unprivileged_user()
            version = self._run("postgres", "--version")
            if version.returncode != 0:
                raise self._fail("postgres --version", version)
            self.version = version.stdout.strip()
            init = self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--locale=C", "--no-sync",
            )  # fmt: skip
            if init.returncode != 0:
                raise self._fail("initdb", init)
            for attempt in range(attempts):
                self.port = free_port()
                # TCP on loopback only (no Unix socket: a long temp path cannot break it); durability
                # off: a throwaway server, and CREATE/DROP DATABASE per test stay fast
                options = (
                    f"-h 127.0.0.1 -p {self.port} -k '' "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                )
                where = ("-D", str(self.data), "-l", str(self.log))
                self._running = True  # from here stop() stops it, even if pg_ctl gives up waiting
                proc = self._run("pg_ctl", "start", *where, "-w", "-t", "60", "-o", options)
                if proc.returncode == 0:
                    return self
                if attempt == attempts - 1 or "in use" not in self.log.read_text(errors="replace"):
                    raise self._fail("pg_ctl start", proc)
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (fast, then immediate) and delete the temp dir."""
        if self._running:
            for mode in ("fast", "immediate"):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    stop = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", timeout=60)
                    if stop.returncode == 0:
                        break
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)

"""`listenloop demo`'s ready-made campaign: two accounts and a spoken-digit project with seed labels.

The demo is idempotent: a second start in the same folder keeps the database, the project
and its answers, and only resets the two demo passwords (kept in `demo-logins.txt`, readable
by the user alone) so that the printed logins always work.
"""

from __future__ import annotations

import io
import os
import secrets
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import soundfile as sf
from sqlalchemy import select

from listenloop.demo import DEMO_DIR
from listenloop.engine.accounts import Principal, create_user, hash_password
from listenloop.engine.config import ProjectConfig
from listenloop.engine.projects import create_project
from listenloop.engine.uploads import mark_gold, store_clips, unpack_archive
from listenloop.store.database import Database
from listenloop.store.models import Project, User

OWNER, ANNOTATOR = "demo-owner", "demo-annotator"
PROJECT_NAME = "Spoken digits (demo)"
SEEDS_PER_CLASS = 2  # the labelled seed set: the first model is trained right away
GOLD_PER_CLASS = 1  # control questions with a known answer
DEMO_CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class DemoLogins:
    """The two printed logins and the demo project's id."""

    owner: tuple[str, str]
    annotator: tuple[str, str]
    project_id: int


def _passwords(data_dir: Path) -> dict[str, str]:
    """The demo passwords kept in the data folder (new random ones the first time)."""
    path = data_dir / "demo-logins.txt"
    if path.is_file():
        pairs = [line.split(" ", 1) for line in path.read_text().splitlines() if " " in line]
        known = {user: pw for user, pw in pairs}
        if OWNER in known and ANNOTATOR in known:
            return known
    known = {OWNER: secrets.token_urlsafe(9), ANNOTATOR: secrets.token_urlsafe(9)}
    path.write_text("".join(f"{u} {p}\n" for u, p in known.items()))
    os.chmod(path, 0o600)
    return known


def _account(db: Database, username: str, password: str, role: str) -> Principal:
    """The demo account `username`, created or given `password` again."""
    digest = hash_password(password)
    with db.write() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = create_user(session, username, digest, role)
        else:
            user.password_hash = digest
        return Principal(user.id, user.username, user.role)


def _wav_name(name: str) -> str:
    """The name a bundled clip is uploaded under: FSDD is published as WAV."""
    return str(Path(name).with_suffix(".wav"))


def _as_wav(path: Path) -> bytes:
    """A bundled FLAC clip as the 16-bit PCM WAV that FSDD publishes.

    The package ships FLAC to stay small; the project gets the data set's own format, so the
    demo's uploads, downloads and exports look like a user's FSDD upload.
    """
    signal, rate = sf.read(path, dtype="int16")
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _seed_and_gold() -> tuple[dict[str, str], dict[str, str]]:
    """Seed labels (file -> digit) and control answers, drawn from different speakers per class."""
    table = pd.read_csv(DEMO_DIR / "labels.csv", dtype=str)
    seeds: dict[str, str] = {}
    gold: dict[str, str] = {}
    for label, rows in table.groupby("label", sort=True):
        files = rows.drop_duplicates("speaker")["file"].tolist()
        for f in files[:SEEDS_PER_CLASS]:
            seeds[_wav_name(f)] = str(label)
        for f in files[SEEDS_PER_CLASS : SEEDS_PER_CLASS + GOLD_PER_CLASS]:
            gold[_wav_name(f)] = str(label)
    return seeds, gold


def prepare_demo(db: Database, data_dir: Path) -> DemoLogins:
    """Accounts and the demo project (created once, with its clips, seed labels and control questions)."""
    passwords = _passwords(data_dir)
    owner = _account(db, OWNER, passwords[OWNER], "owner")
    _account(db, ANNOTATOR, passwords[ANNOTATOR], "annotator")
    with db.read() as session:
        existing = session.scalar(
            select(Project.id).where(Project.owner_id == owner.id, Project.name == PROJECT_NAME)
        )
    if existing is None:
        existing = _create_project(db, data_dir, owner)
    return DemoLogins((OWNER, passwords[OWNER]), (ANNOTATOR, passwords[ANNOTATOR]), int(existing))


def _create_project(db: Database, data_dir: Path, owner: Principal) -> int:
    seeds, gold = _seed_and_gold()
    config = ProjectConfig(
        name=PROJECT_NAME,
        task_type="classification",
        classes=DEMO_CLASSES,
        retrain_every=10,
    )
    with tempfile.TemporaryDirectory(prefix="listenloop-demo-") as tmp:
        archive = Path(tmp) / "clips.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for path in sorted((DEMO_DIR / "recordings").iterdir()):
                z.writestr(_wav_name(path.name), _as_wav(path))
        unpacked = unpack_archive(archive, Path(tmp) / "unpack")
        try:
            with db.write() as session:
                project = create_project(session, owner, config)
                store_clips(session, project, unpacked, data_dir, user_id=owner.id, labels=seeds)
                session.flush()
                mark_gold(session, project, gold, user_id=owner.id)
                return int(project.id)
        finally:
            unpacked.cleanup()

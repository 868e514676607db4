"""Migrations: the newest schema matches the models, and 0003 fills the running counts of a
database that already holds clips (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from listenloop.store.database import MIGRATIONS, Database, upgrade
from listenloop.store.models import Base


def insert(connection: Connection, table: str, values: dict[str, object]) -> None:
    """A row through plain SQL: the models describe the newest schema, not an old revision's."""
    names = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), values)


def migrate(db: Database, revision: str) -> None:
    upgrade(db.engine, revision)


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Database:
    database = Database(database_url)
    yield database
    database.dispose()


def test_the_migrated_schema_matches_the_models(db: Database) -> None:
    db.upgrade()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_0003_counts_existing_clips_and_labels(db: Database) -> None:
    migrate(db, "0002")
    rows = [
        # seed label, gold, gold label, status, label: labelled?
        ("a", False, None, "done", "a"),  # seed: yes
        (None, True, "b", "queued", None),  # control clip: yes
        (None, False, None, "done", "b"),  # confident aggregate: yes
        (None, False, None, "done", "can't tell"),  # can't tell: no
        (None, False, None, "low_agreement", "a"),  # unsure: no
        (None, False, None, "queued", None),  # waiting: no
    ]
    now = datetime(2026, 1, 1)
    project = {
        "id": 1, "name": "p", "owner_id": 1, "task_type": "classification", "classes": '["a", "b"]',
        "feature_set": "mfcc", "learner": "svm", "strategy": "margin", "mode": "pool", "retrain_every": 20,
        "redundancy_min": 2, "redundancy_max": 7, "redundancy_tau": 0.95, "control_rate": 0.1,
        "consistency_rate": 0.05, "trust_threshold": 0.5, "invite_only": False, "settings": "{}",
        "answers_used": 0, "created_at": now,
    }  # fmt: skip
    with db.engine.begin() as c:
        insert(
            c, "users", {"id": 1, "username": "o", "password_hash": "x", "role": "owner", "created_at": now}
        )
        insert(c, "projects", project)
        for i, (seed, gold, gold_label, status, label) in enumerate(rows):
            clip = {
                "project_id": 1, "file_name": f"c{i}.wav", "sha256": f"{i:064x}", "path": "x",
                "duration": 1.0, "sample_rate": 8000, "status": status, "rank": 0.0, "seed_label": seed,
                "is_gold": gold, "gold_label": gold_label, "n_answers": 0, "label": label,
                "created_at": now, "updated_at": now,
            }  # fmt: skip
            insert(c, "clips", clip)
    db.upgrade()
    with db.engine.connect() as c:
        counts = c.execute(text("SELECT clips_count, labels_count, skills_answers FROM projects")).one()
    assert tuple(counts) == (6, 3, 0)


def test_0008_adds_rating_tolerance_and_back(db: Database) -> None:
    """0008 adds `projects.rating_tolerance` (null: a tenth of the range) to a database that
    holds a continuous project, which keeps its row; its downgrade removes the column again."""
    migrate(db, "0007")
    now = datetime(2026, 1, 1)
    project = {
        "id": 1, "name": "loud", "owner_id": 1, "task_type": "continuous", "classes": "[]",
        "range_min": -20.0, "range_max": 20.0, "feature_set": "mfcc", "learner": "svr",
        "strategy": "random", "mode": "pool", "retrain_every": 20, "redundancy_min": 2,
        "redundancy_max": 7, "redundancy_tau": 0.95, "control_rate": 0.1, "consistency_rate": 0.05,
        "trust_threshold": 0.5, "invite_only": False, "settings": "{}", "answers_used": 0, "created_at": now,
    }  # fmt: skip
    with db.engine.begin() as c:
        insert(
            c, "users", {"id": 1, "username": "o", "password_hash": "x", "role": "owner", "created_at": now}
        )
        insert(c, "projects", project)
    db.upgrade()
    with db.engine.begin() as c:
        assert tuple(c.execute(text("SELECT name, rating_tolerance FROM projects")).one()) == ("loud", None)
        c.execute(text("UPDATE projects SET rating_tolerance = 1.5"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    with db.engine.connect() as c:
        columns = c.execute(text("SELECT * FROM projects")).keys()
        assert "rating_tolerance" not in columns and "range_min" in columns


def test_0009_keeps_the_owners_flags_and_leaves_auto_block_off(db: Database) -> None:
    """Spammer flags: an existing flag stays the owner's (not automatic, no reason), and
    existing projects do not block detected spammers; and the member row survives the rebuild of
    `projects` on SQLite (with foreign keys on, its DROP cascaded to members, clips and tasks)."""
    migrate(db, "0008")
    now = datetime(2026, 1, 1)
    project = {
        "id": 1, "name": "p", "owner_id": 1, "task_type": "classification", "classes": '["a", "b"]',
        "feature_set": "mfcc", "learner": "svm", "strategy": "margin", "mode": "pool", "retrain_every": 20,
        "redundancy_min": 2, "redundancy_max": 7, "redundancy_tau": 0.95, "control_rate": 0.1,
        "consistency_rate": 0.05, "trust_threshold": 0.5, "invite_only": False, "settings": "{}",
        "answers_used": 0, "created_at": now, "passive_share": 0.1, "is_open": True,
    }  # fmt: skip
    with db.engine.begin() as c:
        for i, role in ((1, "owner"), (2, "annotator")):
            insert(
                c,
                "users",
                {"id": i, "username": f"u{i}", "password_hash": "x", "role": role, "created_at": now},
            )
        insert(c, "projects", project)
        member = {"project_id": 1, "user_id": 2, "active": True, "added_at": now, "flagged": True}
        insert(c, "project_members", member)
    db.upgrade()
    with db.engine.connect() as c:
        row = c.execute(
            text("SELECT flagged, flag_auto, flag_reason, flag_reviewed_at FROM project_members")
        ).one()
        block = c.execute(text("SELECT auto_block_spammers FROM projects")).scalar_one()
    assert (bool(row[0]), bool(row[1]), row[2], row[3], bool(block)) == (True, False, None, None, False)


def test_0010_counts_cant_tell_and_evidence_and_lets_controls_come_back(db: Database) -> None:
    migrate(db, "0009")
    now = datetime(2026, 1, 1)
    project = {
        "id": 1, "name": "p", "owner_id": 1, "task_type": "classification", "classes": '["a", "b"]',
        "feature_set": "mfcc", "learner": "svm", "strategy": "margin", "mode": "pool", "retrain_every": 20,
        "redundancy_min": 2, "redundancy_max": 7, "redundancy_tau": 0.95, "control_rate": 0.1,
        "consistency_rate": 0.05, "trust_threshold": 0.5, "invite_only": False, "settings": "{}",
        "answers_used": 3, "created_at": now, "is_open": True,
    }  # fmt: skip
    with db.engine.begin() as c:
        for uid in (1, 2):
            insert(
                c,
                "users",
                {"id": uid, "username": f"u{uid}", "password_hash": "x", "role": "owner", "created_at": now},
            )
        insert(c, "projects", project)
        insert(c, "clips", {
            "id": 1, "project_id": 1, "file_name": "c.wav", "sha256": "0" * 64, "path": "x", "duration": 1.0,
            "sample_rate": 8000, "status": "queued", "rank": 0.0, "is_gold": True, "gold_label": "a",
            "n_answers": 0, "created_at": now, "updated_at": now,
        })  # fmt: skip
        for tid, answer, kind in ((1, "can't tell", "consistency"), (2, "a", "regular")):
            insert(c, "tasks", {
                "id": tid, "project_id": 1, "clip_id": 1, "annotator_id": 2, "kind": kind,
                "created_at": now, "leased_until": now, "answered_at": now, "answer": answer, "points": 10,
            })  # fmt: skip
        insert(c, "worker_trust", {
            "project_id": 1, "user_id": 2, "trust": 0.6, "n_checked": 3, "n_right": 2, "n_answers": 2,
            "points": 20,
        })  # fmt: skip
    db.upgrade()
    with db.engine.begin() as c:
        row = c.execute(text("SELECT evidence, n_cant_tell FROM worker_trust")).one()
        assert tuple(row) == (3.0, 1)
        assert c.execute(text("SELECT cant_tell_count FROM projects")).scalar() == 1
        for tid in (3, 4):  # the same control clip twice for one annotator: allowed now
            insert(c, "tasks", {
                "id": tid, "project_id": 1, "clip_id": 1, "annotator_id": 2, "kind": "control",
                "created_at": now, "leased_until": now, "points": 0,
            })  # fmt: skip
    with pytest.raises(Exception, match=r"(?i)unique"), db.engine.begin() as c:
        insert(c, "tasks", {
            "id": 5, "project_id": 1, "clip_id": 1, "annotator_id": 2, "kind": "regular",
            "created_at": now, "leased_until": now, "points": 0,
        })  # fmt: skip
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with pytest.raises(RuntimeError, match="repeated control answers"), db.engine.begin() as c:
        config.attributes["connection"] = c
        command.downgrade(config, "0009")  # the old rule cannot hold task 4: refused, nothing lost
    with db.engine.begin() as c:
        c.execute(text("DELETE FROM tasks WHERE id = 4"))
    with db.engine.begin() as c:
        config.attributes["connection"] = c
        command.downgrade(config, "0009")
    with db.engine.connect() as c:  # nothing that refers to clips or projects went with the columns
        assert c.execute(text("SELECT count(*) FROM tasks")).scalar() == 3
        assert c.execute(text("SELECT count(*) FROM clips")).scalar() == 1

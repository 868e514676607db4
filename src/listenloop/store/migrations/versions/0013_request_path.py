"""The request path at a campaign's scale: indexes for every statement an annotator or an open
dashboard runs, and running clip tallies kept by triggers.

- tasks: `ix_tasks_open` and `ix_tasks_project_answered` gain `leased_until` (live leases are a
  range seek, however many expired ones there are); `ix_tasks_annotator_project` holds an
  annotator's tasks of one project in id order (the control question's delay, the consistency
  draw) and their answer times over every project (progress, read from the index alone).
- events: `ix_events_project_kind` finds the newest event of a kind (the learning error of
  `status`) without sorting the project's events.
- clips: `ix_clips_controls`, a partial index of the control clips (gold or silver), so that a
  control draw never walks the whole project.
- worker_trust: `ix_worker_trust_user_id` (an annotator's totals over every project).
- clip_tallies: how many clips of a project have each (status, is_gold, seeded, n_answers), kept
  by triggers on `clips` (insert, delete, and updates of those columns), so that `status` and
  the dashboard count without reading the clips. Filled from the clips here.

A later migration that rebuilds `clips` (a SQLite batch copy) drops its triggers with the old
table and must create them again (`tests/test_request_path_plans.py` checks the tallies).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_CONTROLS_SQLITE = sa.text("is_gold = 1 OR silver = 1")
_CONTROLS_PG = sa.text("is_gold = true OR silver = true")
_KEY = "project_id, status, is_gold, seeded, n_answers"

_SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER clips_tally_insert AFTER INSERT ON clips BEGIN
  INSERT INTO clip_tallies ({_KEY}, clips)
  VALUES (NEW.project_id, NEW.status, NEW.is_gold, NEW.seed_label IS NOT NULL, NEW.n_answers, 1)
  ON CONFLICT ({_KEY}) DO UPDATE SET clips = clips + 1;
END""",
    """CREATE TRIGGER clips_tally_delete AFTER DELETE ON clips BEGIN
  UPDATE clip_tallies SET clips = clips - 1
  WHERE project_id = OLD.project_id AND status = OLD.status AND is_gold = OLD.is_gold
    AND seeded = (OLD.seed_label IS NOT NULL) AND n_answers = OLD.n_answers;
END""",
    f"""CREATE TRIGGER clips_tally_update AFTER UPDATE OF project_id, status, is_gold, seed_label, n_answers
ON clips
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.status IS NOT NEW.status
  OR OLD.is_gold IS NOT NEW.is_gold OR (OLD.seed_label IS NULL) IS NOT (NEW.seed_label IS NULL)
  OR OLD.n_answers IS NOT NEW.n_answers
BEGIN
  UPDATE clip_tallies SET clips = clips - 1
  WHERE project_id = OLD.project_id AND status = OLD.status AND is_gold = OLD.is_gold
    AND seeded = (OLD.seed_label IS NOT NULL) AND n_answers = OLD.n_answers;
  INSERT INTO clip_tallies ({_KEY}, clips)
  VALUES (NEW.project_id, NEW.status, NEW.is_gold, NEW.seed_label IS NOT NULL, NEW.n_answers, 1)
  ON CONFLICT ({_KEY}) DO UPDATE SET clips = clips + 1;
END""",
)

_PG_FUNCTION = f"""CREATE FUNCTION clips_tally() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
    UPDATE clip_tallies SET clips = clips - 1
    WHERE project_id = OLD.project_id AND status = OLD.status AND is_gold = OLD.is_gold
      AND seeded = (OLD.seed_label IS NOT NULL) AND n_answers = OLD.n_answers;
  END IF;
  IF TG_OP = 'UPDATE' OR TG_OP = 'INSERT' THEN
    INSERT INTO clip_tallies ({_KEY}, clips)
    VALUES (NEW.project_id, NEW.status, NEW.is_gold, NEW.seed_label IS NOT NULL, NEW.n_answers, 1)
    ON CONFLICT ({_KEY}) DO UPDATE SET clips = clip_tallies.clips + 1;
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql"""
_PG_TRIGGERS = (
    "CREATE TRIGGER clips_tally_insert AFTER INSERT ON clips FOR EACH ROW EXECUTE FUNCTION clips_tally()",
    "CREATE TRIGGER clips_tally_delete AFTER DELETE ON clips FOR EACH ROW EXECUTE FUNCTION clips_tally()",
    """CREATE TRIGGER clips_tally_update AFTER UPDATE OF project_id, status, is_gold, seed_label, n_answers
ON clips FOR EACH ROW
WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.status IS DISTINCT FROM NEW.status
  OR OLD.is_gold IS DISTINCT FROM NEW.is_gold
  OR (OLD.seed_label IS NULL) IS DISTINCT FROM (NEW.seed_label IS NULL)
  OR OLD.n_answers IS DISTINCT FROM NEW.n_answers)
EXECUTE FUNCTION clips_tally()""",
)


def upgrade() -> None:
    op.drop_index("ix_tasks_open", table_name="tasks")
    op.create_index("ix_tasks_open", "tasks", ["project_id", "annotator_id", "answered_at", "leased_until"])
    op.drop_index("ix_tasks_project_answered", table_name="tasks")
    op.create_index("ix_tasks_project_answered", "tasks", ["project_id", "answered_at", "leased_until"])
    annotator = ["annotator_id", "project_id", "id", "answered_at"]
    op.create_index("ix_tasks_annotator_project", "tasks", annotator)
    op.create_index("ix_events_project_kind", "events", ["project_id", "kind", "id"])
    op.create_index(
        "ix_clips_controls",
        "clips",
        ["project_id", "id"],
        sqlite_where=_CONTROLS_SQLITE,
        postgresql_where=_CONTROLS_PG,
    )
    op.create_index("ix_worker_trust_user_id", "worker_trust", ["user_id"])
    op.create_table(
        "clip_tallies",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("seeded", sa.Boolean(), nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("clips", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_clip_tallies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "status", "is_gold", "seeded", "n_answers", name=op.f("pk_clip_tallies")
        ),
    )
    op.execute(
        sa.text(
            f"INSERT INTO clip_tallies ({_KEY}, clips) SELECT project_id, status, is_gold,"
            " seed_label IS NOT NULL, n_answers, count(*) FROM clips"
            " GROUP BY project_id, status, is_gold, seed_label IS NOT NULL, n_answers"
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(_PG_FUNCTION))
        for trigger in _PG_TRIGGERS:
            op.execute(sa.text(trigger))
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(sa.text(trigger))


def downgrade() -> None:
    for name in ("clips_tally_insert", "clips_tally_delete", "clips_tally_update"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON clips"))
        else:
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text("DROP FUNCTION IF EXISTS clips_tally()"))
    op.drop_table("clip_tallies")
    op.drop_index("ix_worker_trust_user_id", table_name="worker_trust")
    op.drop_index("ix_clips_controls", table_name="clips")
    op.drop_index("ix_events_project_kind", table_name="events")
    op.drop_index("ix_tasks_annotator_project", table_name="tasks")
    op.drop_index("ix_tasks_project_answered", table_name="tasks")
    op.create_index("ix_tasks_project_answered", "tasks", ["project_id", "answered_at"])
    op.drop_index("ix_tasks_open", table_name="tasks")
    op.create_index("ix_tasks_open", "tasks", ["project_id", "annotator_id", "answered_at"])

"""Checks that last: control questions may come back to the same annotator, crowd-finished clips
become "silver" controls, a check's result is kept with its task, and can't-tell answers and
weighted check evidence are counted.

- tasks: the one-task-per-(clip, annotator, kind) rule now holds for every kind but `control`
  (a control clip comes back after a delay), as a partial unique index, with a plain index on
  (clip, annotator) for "did they have this clip" (what the old constraint's index served);
  `passed` keeps what a check answer's check gave (None: nothing checked), so that undo takes
  back exactly that.
- clips.silver: a clip the crowd finished with trusted agreement, served as a control question.
- worker_trust.evidence: the weight of the checks that trust rests on (a consistency pass
  weighs less than a control; existing rows: their check count); worker_trust.n_cant_tell and
  projects.cant_tell_count: running counts of can't-tell answers (filled from the answers).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CANT_TELL = "can't tell"
_NOT_CONTROL = sa.text("kind != 'control'")


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_tasks_clip_id_annotator_id_kind", type_="unique")
        batch_op.add_column(sa.Column("passed", sa.Boolean(), nullable=True))
    op.create_index(
        "ux_tasks_clip_annotator_kind",
        "tasks",
        ["clip_id", "annotator_id", "kind"],
        unique=True,
        sqlite_where=_NOT_CONTROL,
        postgresql_where=_NOT_CONTROL,
    )
    op.create_index("ix_tasks_clip_annotator", "tasks", ["clip_id", "annotator_id"])
    # a constant default: SQLite then adds the column in place (an expression default would make
    # alembic copy the table, and dropping `clips` with foreign keys on deletes its tasks)
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("silver", sa.Boolean(), nullable=False, server_default="0"))
    with op.batch_alter_table("worker_trust", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("n_cant_tell", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cant_tell_count", sa.Integer(), nullable=False, server_default="0"))
    cant_tell = sa.bindparam("ct", CANT_TELL)
    op.execute(sa.text("UPDATE worker_trust SET evidence = n_checked"))
    op.execute(
        sa.text(
            "UPDATE worker_trust SET n_cant_tell = (SELECT count(*) FROM tasks WHERE tasks.project_id ="
            " worker_trust.project_id AND tasks.annotator_id = worker_trust.user_id AND tasks.answer = :ct)"
        ).bindparams(cant_tell)
    )
    op.execute(
        sa.text(
            "UPDATE projects SET cant_tell_count = (SELECT count(*) FROM tasks WHERE tasks.project_id ="
            " projects.id AND tasks.answer = :ct)"
        ).bindparams(cant_tell)
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch copy: on SQLite a batch drops
    # and recreates the table, and dropping `clips` or `projects` with foreign keys on would
    # delete every row that refers to them (ON DELETE CASCADE).
    op.drop_column("projects", "cant_tell_count")
    op.drop_column("worker_trust", "n_cant_tell")
    op.drop_column("worker_trust", "evidence")
    op.drop_column("clips", "silver")
    op.drop_index("ix_tasks_clip_annotator", table_name="tasks")
    op.drop_index("ux_tasks_clip_annotator_kind", table_name="tasks")
    repeats = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM tasks WHERE kind = 'control' AND id NOT IN"
            " (SELECT min(id) FROM tasks GROUP BY clip_id, annotator_id, kind)"
        )
    )
    if repeats:  # the old unique rule cannot hold them, and nothing stored may be lost
        raise RuntimeError(f"cannot downgrade below 0010: {repeats} repeated control answers would be lost")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("passed")
        batch_op.create_unique_constraint(
            "uq_tasks_clip_id_annotator_id_kind", ["clip_id", "annotator_id", "kind"]
        )

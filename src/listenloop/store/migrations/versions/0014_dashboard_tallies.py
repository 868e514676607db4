"""The dashboard's counts kept on write: label tallies and answer tallies, both kept by triggers.

- label_tallies: how many clips of a project carry each label, per source (`crowd`: done by
  the crowd, `seed`: the owner's seed label, `expert`: the owner's correction, which replaces
  either), as the dashboard's label distribution counts them (control clips left out; a clip
  counts once it is seeded or done). Kept by triggers on `clips` (insert, delete, updates of
  the columns that decide the source and the label).
- answer_tallies: per project, annotator and task kind, the answered tasks, how many of them
  a check judged (`passed` set) and how many passed: the savings panel's answers by kind and
  the annotator table's control and consistency columns, without reading tasks or events.
  Kept by triggers on `tasks` (an answer, an undo, a deleted answered task).

Both are filled from the rows here. A later migration that rebuilds `clips` or `tasks` (a
SQLite batch copy) drops their triggers with the old table and must create them again
(`tests/test_request_path_plans.py` checks the tallies against the rows).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _source(row: str) -> str:
    """SQL: the label distribution's source of a clip row (NULL: not counted)."""
    return (
        f"CASE WHEN {row}.is_gold OR ({row}.seed_label IS NULL AND {row}.status <> 'done') THEN NULL"
        f" WHEN {row}.expert_label IS NOT NULL THEN 'expert'"
        f" WHEN {row}.seed_label IS NOT NULL THEN 'seed'"
        f" WHEN {row}.label IS NOT NULL THEN 'crowd' END"
    )


def _value(row: str) -> str:
    return f"COALESCE({row}.expert_label, {row}.seed_label, {row}.label)"


def _checked(row: str) -> str:
    return f"CASE WHEN {row}.passed IS NULL THEN 0 ELSE 1 END"


def _passed(row: str) -> str:
    return f"CASE WHEN {row}.passed THEN 1 ELSE 0 END"


_LABEL_COLUMNS = "project_id, is_gold, status, label, seed_label, expert_label"
_TASK_COLUMNS = "project_id, annotator_id, kind, answered_at, passed"


def _label_add(row: str, excluded: str) -> str:
    return (
        f"INSERT INTO label_tallies (project_id, source, label, clips)"
        f" SELECT {row}.project_id, {_source(row)}, {_value(row)}, 1 WHERE {_source(row)} IS NOT NULL"
        f" ON CONFLICT (project_id, source, label) DO UPDATE SET clips = {excluded}.clips + 1"
    )


def _label_remove(row: str) -> str:
    return (
        f"UPDATE label_tallies SET clips = clips - 1 WHERE project_id = {row}.project_id"
        f" AND source = {_source(row)} AND label = {_value(row)}"
    )


def _answer_add(row: str, excluded: str) -> str:
    return (
        "INSERT INTO answer_tallies (project_id, user_id, kind, answers, checked, passed)"
        f" SELECT {row}.project_id, {row}.annotator_id, {row}.kind, 1, {_checked(row)}, {_passed(row)}"
        f" WHERE {row}.answered_at IS NOT NULL"
        " ON CONFLICT (project_id, user_id, kind) DO UPDATE SET"
        f" answers = {excluded}.answers + 1, checked = {excluded}.checked + {_checked(row)},"
        f" passed = {excluded}.passed + {_passed(row)}"
    )


def _answer_remove(row: str) -> str:
    return (
        f"UPDATE answer_tallies SET answers = answers - 1, checked = checked - {_checked(row)},"
        f" passed = passed - {_passed(row)}"
        f" WHERE project_id = {row}.project_id AND user_id = {row}.annotator_id AND kind = {row}.kind"
        f" AND {row}.answered_at IS NOT NULL"
    )


def _sqlite_triggers() -> list[str]:
    label_changed = (
        f"({_source('OLD')}) IS NOT ({_source('NEW')}) OR {_value('OLD')} IS NOT {_value('NEW')}"
        " OR OLD.project_id IS NOT NEW.project_id"
    )
    answer_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _TASK_COLUMNS.split(", "))
    return [
        f"CREATE TRIGGER clips_label_insert AFTER INSERT ON clips WHEN ({_source('NEW')}) IS NOT NULL"
        f" BEGIN {_label_add('NEW', 'label_tallies')}; END",
        f"CREATE TRIGGER clips_label_delete AFTER DELETE ON clips WHEN ({_source('OLD')}) IS NOT NULL"
        f" BEGIN {_label_remove('OLD')}; END",
        f"CREATE TRIGGER clips_label_update AFTER UPDATE OF {_LABEL_COLUMNS} ON clips WHEN {label_changed}"
        f" BEGIN {_label_remove('OLD')}; {_label_add('NEW', 'label_tallies')}; END",
        "CREATE TRIGGER tasks_answer_insert AFTER INSERT ON tasks WHEN NEW.answered_at IS NOT NULL"
        f" BEGIN {_answer_add('NEW', 'answer_tallies')}; END",
        "CREATE TRIGGER tasks_answer_delete AFTER DELETE ON tasks WHEN OLD.answered_at IS NOT NULL"
        f" BEGIN {_answer_remove('OLD')}; END",
        f"CREATE TRIGGER tasks_answer_update AFTER UPDATE OF {_TASK_COLUMNS} ON tasks"
        f" WHEN ({answer_changed}) AND (OLD.answered_at IS NOT NULL OR NEW.answered_at IS NOT NULL)"
        f" BEGIN {_answer_remove('OLD')}; {_answer_add('NEW', 'answer_tallies')}; END",
    ]


_PG_FUNCTIONS = (
    f"""CREATE FUNCTION clips_label_tally() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
    {_label_remove("OLD")};
  END IF;
  IF TG_OP = 'UPDATE' OR TG_OP = 'INSERT' THEN
    {_label_add("NEW", "label_tallies")};
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql""",
    f"""CREATE FUNCTION tasks_answer_tally() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
    {_answer_remove("OLD")};
  END IF;
  IF TG_OP = 'UPDATE' OR TG_OP = 'INSERT' THEN
    {_answer_add("NEW", "answer_tallies")};
  END IF;
  RETURN NULL;
END
$$ LANGUAGE plpgsql""",
)


def _pg_triggers() -> list[str]:
    label_changed = (
        f"({_source('OLD')}) IS DISTINCT FROM ({_source('NEW')})"
        f" OR {_value('OLD')} IS DISTINCT FROM {_value('NEW')}"
        " OR OLD.project_id IS DISTINCT FROM NEW.project_id"
    )
    answer_changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _TASK_COLUMNS.split(", "))
    clips, tasks = "EXECUTE FUNCTION clips_label_tally()", "EXECUTE FUNCTION tasks_answer_tally()"
    return [
        f"CREATE TRIGGER clips_label_insert AFTER INSERT ON clips FOR EACH ROW"
        f" WHEN (({_source('NEW')}) IS NOT NULL) {clips}",
        f"CREATE TRIGGER clips_label_delete AFTER DELETE ON clips FOR EACH ROW"
        f" WHEN (({_source('OLD')}) IS NOT NULL) {clips}",
        f"CREATE TRIGGER clips_label_update AFTER UPDATE OF {_LABEL_COLUMNS} ON clips FOR EACH ROW"
        f" WHEN ({label_changed}) {clips}",
        f"CREATE TRIGGER tasks_answer_insert AFTER INSERT ON tasks FOR EACH ROW"
        f" WHEN (NEW.answered_at IS NOT NULL) {tasks}",
        f"CREATE TRIGGER tasks_answer_delete AFTER DELETE ON tasks FOR EACH ROW"
        f" WHEN (OLD.answered_at IS NOT NULL) {tasks}",
        f"CREATE TRIGGER tasks_answer_update AFTER UPDATE OF {_TASK_COLUMNS} ON tasks FOR EACH ROW"
        f" WHEN (({answer_changed}) AND (OLD.answered_at IS NOT NULL OR NEW.answered_at IS NOT NULL))"
        f" {tasks}",
    ]


_TRIGGERS = {
    "clips": ("clips_label_insert", "clips_label_delete", "clips_label_update"),
    "tasks": ("tasks_answer_insert", "tasks_answer_delete", "tasks_answer_update"),
}


def upgrade() -> None:
    op.create_table(
        "label_tallies",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("clips", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_label_tallies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "source", "label", name=op.f("pk_label_tallies")),
    )
    op.create_table(
        "answer_tallies",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_answer_tallies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_answer_tallies_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", "kind", name=op.f("pk_answer_tallies")),
    )
    op.execute(
        sa.text(
            "INSERT INTO label_tallies (project_id, source, label, clips)"
            f" SELECT c.project_id, {_source('c')}, {_value('c')}, count(*) FROM clips AS c"
            f" WHERE ({_source('c')}) IS NOT NULL GROUP BY c.project_id, {_source('c')}, {_value('c')}"
        )
    )
    op.execute(
        sa.text(
            "INSERT INTO answer_tallies (project_id, user_id, kind, answers, checked, passed)"
            " SELECT t.project_id, t.annotator_id, t.kind, count(*),"
            f" sum({_checked('t')}), sum({_passed('t')})"
            " FROM tasks AS t WHERE t.answered_at IS NOT NULL GROUP BY t.project_id, t.annotator_id, t.kind"
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        for function in _PG_FUNCTIONS:
            op.execute(sa.text(function))
        triggers = _pg_triggers()
    else:
        triggers = _sqlite_triggers()
    for trigger in triggers:
        op.execute(sa.text(trigger))


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table, names in _TRIGGERS.items():
        for name in names:
            op.execute(
                sa.text(
                    f"DROP TRIGGER IF EXISTS {name} ON {table}" if pg else f"DROP TRIGGER IF EXISTS {name}"
                )
            )
    if pg:
        op.execute(sa.text("DROP FUNCTION IF EXISTS clips_label_tally()"))
        op.execute(sa.text("DROP FUNCTION IF EXISTS tasks_answer_tally()"))
    op.drop_table("answer_tallies")
    op.drop_table("label_tallies")

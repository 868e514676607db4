"""Review, guidelines and lifecycle (issue 21): a project's state, guidelines, answer retention and
examples-as-controls option; a member's role (reviewer); a clip's example label and discard.

- `projects.state`: active, paused (no new tasks) or archived (read-only); existing projects stay
  active. `projects.guidelines` (Markdown), `projects.retention_days` (raw answers of final clips
  are deleted that many days after the clip became final; NULL keeps them), and
  `projects.examples_as_controls` (example clips serve as control questions).
- `project_members.role`: annotator (as before) or reviewer (may review and label clips).
- `clips.example_label`: the class the clip is an example of (guidelines); `clips.example_control`:
  the clip became a control question because it is an example (so that turning the option off
  undoes exactly that).

Plain ADD COLUMNs: a SQLite batch copy of `clips` would drop its tally triggers (migration 0013).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("state", sa.String(16), nullable=False, server_default="active"))
    op.add_column("projects", sa.Column("guidelines", sa.Text(), nullable=True))
    op.add_column("projects", sa.Column("retention_days", sa.Integer(), nullable=True))
    op.add_column(
        "projects",
        sa.Column("examples_as_controls", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "project_members", sa.Column("role", sa.String(16), nullable=False, server_default="annotator")
    )
    op.add_column("clips", sa.Column("example_label", sa.Text(), nullable=True))
    op.add_column(
        "clips", sa.Column("example_control", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    for table, column in (
        ("clips", "example_control"),
        ("clips", "example_label"),
        ("project_members", "role"),
        ("projects", "examples_as_controls"),
        ("projects", "retention_days"),
        ("projects", "guidelines"),
        ("projects", "state"),
    ):
        op.drop_column(table, column)

"""Spammer detection in the platform: why an annotator is flagged, whether detection flagged them,
when the owner last decided on their flag, and the project setting that blocks detected spammers.

`project_members.flag_reason` (the detection's sentence; NULL for the owner's own flag),
`project_members.flag_auto` (the flag was set by detection: their answers count at chance level),
`project_members.flag_reviewed_at` (the owner's last flag or unflag: detection judges only answers
given after it), `projects.auto_block_spammers` (off). Existing flags stay the owner's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flag_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("flag_auto", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("flag_reviewed_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_block_spammers", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("auto_block_spammers")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_column("flag_reviewed_at")
        batch_op.drop_column("flag_auto")
        batch_op.drop_column("flag_reason")

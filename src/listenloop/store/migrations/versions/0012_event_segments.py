"""Events projects (issue 20): a clip may be one annotation segment of a long recording,
`clips.recording` (the uploaded file's name) and `clips.onset` (seconds into it). Clips of
other projects keep null.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("onset", sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite >= 3.35 has it), not a batch rebuild: rebuilding
    # `clips` drops the table, and with foreign keys on that would delete every task (CASCADE).
    op.drop_column("clips", "onset")
    op.drop_column("clips", "recording")

"""Storage use: `clips.size_bytes` (the stored audio's size) and `projects.stored_bytes` (their
sum, a running count for the storage quota), and an index on `clips.sha256` (start-up finds the
clips of an audio file in the store by its content hash).

Clips that exist already get their size at the server's next start-up, which reads it from the
data folder (a migration does not know where that is) and recounts their projects.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_clips_sha256", ["sha256"])
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("stored_bytes")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_index("ix_clips_sha256")
        batch_op.drop_column("size_bytes")

"""The owner's expert corrections of clip labels, and an index for the clip browser's pages.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expert_label", sa.Text(), nullable=True))
    op.create_index("ix_clips_project_id", "clips", ["project_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_clips_project_id", table_name="clips")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("expert_label")

"""The passive arm: a share of each queue drawn at random, clips marked with their arm, and each
model run's passive-learning score.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passive_share", sa.Float(), nullable=False, server_default="0.1"))
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arm", sa.String(length=8), nullable=True))
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passive_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("passive_labels", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("passive_labels")
        batch_op.drop_column("passive_score")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("arm")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("passive_share")

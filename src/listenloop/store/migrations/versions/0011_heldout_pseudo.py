"""Each model run's fair comparison with passive learning and its pseudo-labels:
`model_runs.heldout_score` (the round's model on the held-out random clips the passive arm is
scored on too), `model_runs.heldout_size` (how many) and `model_runs.pseudo_labels` (clips
self-training trained on with the model's own prediction).

Runs recorded before keep null: their passive score was cross-validated on other clips.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heldout_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("heldout_size", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pseudo_labels", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("pseudo_labels")
        batch_op.drop_column("heldout_size")
        batch_op.drop_column("heldout_score")

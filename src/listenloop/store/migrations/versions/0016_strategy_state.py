"""model_runs.strategy_state: what a strategy that learns across rounds kept after the round.

`auto` (strategies/auto.py) is a bandit over query rules whose weights must carry over from
one live round to the next: each round reads the newest run's state and stores its own
(JSON: the arms' log weights and the batch still waiting for answers, clips by id). NULL for
the other strategies and for runs before this revision.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_runs", sa.Column("strategy_state", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("strategy_state")

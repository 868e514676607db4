"""worker_trust.noise: an annotator's rating noise sd from the background fit over all their answers.

A rating project's annotators were weighted by a noise sd from their control answers alone
(a handful each). The background skills refresh now fits it from every answer, regular ones
against their clip's leave-one-out consensus (`crowd.aggregation.continuous.fit_rating_noise`),
and stores it here; NULL until a refresh saw the annotator (the controls-only sd applies).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("worker_trust", sa.Column("noise", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_trust", schema=None) as batch_op:
        batch_op.drop_column("noise")

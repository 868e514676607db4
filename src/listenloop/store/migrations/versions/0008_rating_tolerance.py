"""Dynamic redundancy for ratings: `projects.rating_tolerance`, the standard error of a clip's
mean rating at which it closes (in the rating's units). Null, as for every existing project,
means a tenth of the project's range.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rating_tolerance", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("rating_tolerance")

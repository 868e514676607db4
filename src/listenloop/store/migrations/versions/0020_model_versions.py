"""Model versions: each learning round that fits a model keeps it as a numbered version.

`model_runs.version` (1, 2, ... per project; null for rounds without a model), `model_files`
(the version's folder under the data folder, null once retired), `config` (what it was trained
with), `labels_snapshot` (the id of its training labels), and `test_score` / `test_size` (the
model itself on the project's labelled test clips). Runs recorded before keep null: their
models were never kept.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("model_files", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("labels_snapshot", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("test_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("test_size", sa.Integer(), nullable=True))
    # one row per version (NULLs, the rounds without a model, are distinct on both backends)
    op.create_index("ux_model_runs_project_version", "model_runs", ["project_id", "version"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_model_runs_project_version", table_name="model_runs")
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("test_size")
        batch_op.drop_column("test_score")
        batch_op.drop_column("labels_snapshot")
        batch_op.drop_column("config")
        batch_op.drop_column("model_files")
        batch_op.drop_column("version")

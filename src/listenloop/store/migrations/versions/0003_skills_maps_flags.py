"""Background crowd skills (class prior, confusion matrices), pool maps per model run, member flags,
running clip and label counts per project.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("class_prior", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skills_answers", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("clips_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("labels_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE projects SET "
        "clips_count = (SELECT count(*) FROM clips WHERE clips.project_id = projects.id), "
        "labels_count = (SELECT count(*) FROM clips WHERE clips.project_id = projects.id AND ("
        "clips.seed_label IS NOT NULL OR (clips.is_gold AND clips.gold_label IS NOT NULL) OR "
        "(clips.status = 'done' AND clips.label IS NOT NULL AND clips.label != 'can''t tell')))"
    )
    with op.batch_alter_table("worker_trust", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confusion", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skill", sa.Float(), nullable=True))
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("map", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("map")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_column("flagged")
    with op.batch_alter_table("worker_trust", schema=None) as batch_op:
        batch_op.drop_column("skill")
        batch_op.drop_column("confusion")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("labels_count")
        batch_op.drop_column("clips_count")
        batch_op.drop_column("skills_answers")
        batch_op.drop_column("class_prior")

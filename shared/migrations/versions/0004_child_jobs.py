"""child jobs: the trials of a search stage and the folds of a k-fold stage are jobs of their own

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_job_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("parent_stage_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("child_index", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_jobs_parent_job_id", "jobs", ["parent_job_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_jobs_parent_job_id", ["parent_job_id"])
        batch.create_unique_constraint(
            "uq_jobs_parent_child", ["parent_job_id", "parent_stage_index", "child_index"]
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_parent_child", type_="unique")
        batch.drop_index("ix_jobs_parent_job_id")
        batch.drop_constraint("fk_jobs_parent_job_id", type_="foreignkey")
        batch.drop_column("child_index")
        batch.drop_column("parent_stage_index")
        batch.drop_column("parent_job_id")

"""shared datum rows: a job lists the datums it skipped with the same outcome as an earlier job of its pipeline
through that job's rows (jobs.datums_base) instead of writing a row for each, so a job's bookkeeping follows its
change, not the count of unchanged datums

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('datums_base', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('datums_base')

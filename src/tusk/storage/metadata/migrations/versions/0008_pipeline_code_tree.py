"""pipeline code as data: the stored code tree of each pipeline version

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for versions made before: they still run in their code_dir (see docs/decisions/0009)
    with op.batch_alter_table('pipeline_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_tree', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipeline_versions', schema=None) as batch_op:
        batch_op.drop_column('code_tree')

"""gc: the generation fence between garbage collection and writers

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # one row (id 1): see docs/decisions/0014-gc.md
    op.create_table(
        'gc_fence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('holder', sa.String(length=255), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    # the row exists from the start: a writer's landing transaction always has a row to lock FOR SHARE
    op.execute("INSERT INTO gc_fence (id, generation) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table('gc_fence')

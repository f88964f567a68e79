"""the store's identity: a random id made once, when the store is created

Revision ID: 0011
Revises: 0010
"""
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row (id 1). What a machine remembers about a store (the stat cache of `put -r`) is keyed by this id,
    # so a store dropped and made again at the same URL is a different store, never mistaken for the old one.
    op.create_table(
        'store_identity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('store_id', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute(f"INSERT INTO store_identity (id, store_id) VALUES (1, '{uuid.uuid4().hex}')")


def downgrade() -> None:
    op.drop_table('store_identity')

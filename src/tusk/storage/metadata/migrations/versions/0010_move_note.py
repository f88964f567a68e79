"""branch moves: the note a person gave for a promotion or rollback (the "why" in words)

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for moves made before, and for moves nobody explained (commits, triggers); `reason` stays the
    # kind of move. The length limit (MOVE_NOTE_MAX) is enforced in code, so it can change without a migration.
    with op.batch_alter_table('branch_moves', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('branch_moves', schema=None) as batch_op:
        batch_op.drop_column('note')

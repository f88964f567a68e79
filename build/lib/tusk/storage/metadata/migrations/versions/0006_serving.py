"""serving: deployments with revisions; published algorithm versions

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'deployments',
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('spec', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_table(
        'deployment_revisions',
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('spec', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=255), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['name'], ['deployments.name'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('name', 'revision'),
    )
    op.create_table(
        'algorithm_versions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('owner', sa.String(length=63), nullable=False),
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('major', sa.Integer(), nullable=False),
        sa.Column('minor', sa.Integer(), nullable=False),
        sa.Column('patch', sa.Integer(), nullable=False),
        sa.Column('commit_id', sa.String(length=32), nullable=False),
        sa.Column('spec', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['commit_id'], ['commits.id'], ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('owner', 'name', 'major', 'minor', 'patch'),
    )


def downgrade() -> None:
    op.drop_table('algorithm_versions')
    op.drop_table('deployment_revisions')
    op.drop_table('deployments')

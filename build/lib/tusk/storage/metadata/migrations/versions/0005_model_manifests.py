"""model manifests; code provenance of pipeline versions

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'model_manifests',
        sa.Column('commit_id', sa.String(length=32), nullable=False),
        sa.Column('repo_id', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['commit_id'], ['commits.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('commit_id'),
    )
    with op.batch_alter_table('model_manifests', schema=None) as batch_op:
        batch_op.create_index('ix_model_manifests_repo', ['repo_id', 'created_at'], unique=False)
    with op.batch_alter_table('pipeline_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_info', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipeline_versions', schema=None) as batch_op:
        batch_op.drop_column('code_info')
    with op.batch_alter_table('model_manifests', schema=None) as batch_op:
        batch_op.drop_index('ix_model_manifests_repo')
    op.drop_table('model_manifests')

"""pages of long lists: partial indexes of a job's troubled datums (failed, or recovered with an error), which
its page lists first, and of its other datums; a pipeline's jobs and a repo's commits in order, ties broken by id
(so a page deep in the list is a range of an index, with nothing to sort)

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_TROUBLED = "state = 'failed' OR error IS NOT NULL"  # as tusk.storage.metadata.models.DATUM_TROUBLED says
_UNTROUBLED = f"NOT ({_TROUBLED})"


def upgrade() -> None:
    op.create_index('ix_datum_runs_troubled', 'datum_runs', ['job_id', 'datum_id'],
                    sqlite_where=sa.text(_TROUBLED), postgresql_where=sa.text(_TROUBLED))
    op.create_index('ix_datum_runs_untroubled', 'datum_runs', ['job_id', 'datum_id'],
                    sqlite_where=sa.text(_UNTROUBLED), postgresql_where=sa.text(_UNTROUBLED))
    op.create_index('ix_jobs_pipeline_created', 'jobs', ['pipeline_id', 'created_at', 'id'])
    op.drop_index('ix_commits_repo_started', table_name='commits')
    op.create_index('ix_commits_repo_started', 'commits', ['repo_id', 'started_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_commits_repo_started', table_name='commits')
    op.create_index('ix_commits_repo_started', 'commits', ['repo_id', 'started_at'])
    op.drop_index('ix_jobs_pipeline_created', table_name='jobs')
    op.drop_index('ix_datum_runs_untroubled', table_name='datum_runs')
    op.drop_index('ix_datum_runs_troubled', table_name='datum_runs')

"""timeline index: segments by run, status and start (the timeline finds footage per run)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Covering (run_id, status, start_time, end_time): the timeline's first/last segment of a
    # run in a range and its unplayable segments are index seeks (webapp/timeline/queries.py).
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_run_status_start',
                              ['run_id', 'status', 'start_time', 'end_time'], unique=False)


def downgrade():
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index('ix_segments_run_status_start')

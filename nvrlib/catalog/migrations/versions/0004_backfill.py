"""backfill: segments.backfilled, runs.kind, outages.backfilled_seconds and dropped_seconds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # server defaults fill the existing rows; sa.false() renders 0 on SQLite, false on PostgreSQL
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backfilled', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
    with op.batch_alter_table('outages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backfilled_seconds', sa.Float(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('dropped_seconds', sa.Float(), server_default='0',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('outages', schema=None) as batch_op:
        batch_op.drop_column('dropped_seconds')
        batch_op.drop_column('backfilled_seconds')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_column('backfilled')

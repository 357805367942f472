"""health checks, alerts, outages, retention locks, run-time settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'outages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('camera_id', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['camera_id'], ['cameras.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_outages_camera_start', 'outages', ['camera_id', 'started_at'])
    op.create_index('ix_outages_start', 'outages', ['started_at'])

    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('camera', sa.String(length=64), nullable=True),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('details', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('recipients', sa.Text(), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_alerts_created', 'alerts', ['created_at'])
    op.create_index('ix_alerts_delivery', 'alerts', ['status', 'next_attempt_at'])
    op.create_index('ix_alerts_camera_created', 'alerts', ['camera', 'created_at'])

    op.create_table(
        'locks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('camera_id', sa.Integer(), nullable=True),
        sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['camera_id'], ['cameras.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_locks_camera_range', 'locks', ['camera_id', 'start_time', 'end_time'])

    op.create_table(
        'settings',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('key'))

    op.create_table(
        'hub_status',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disk_total_bytes', sa.BigInteger(), nullable=False),
        sa.Column('disk_free_bytes', sa.BigInteger(), nullable=False),
        sa.Column('footage_bytes', sa.BigInteger(), nullable=False),
        sa.Column('email_enabled', sa.Boolean(), nullable=False),
        sa.Column('recipients_source', sa.String(length=16), nullable=False),
        sa.Column('recipients', sa.Text(), nullable=False),
        sa.Column('checks', sa.Text(), nullable=False),
        sa.Column('retention_deleted_segments', sa.BigInteger(), nullable=False),
        sa.Column('retention_deleted_bytes', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'))

    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alerts_muted_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('camera_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bytes_written', sa.BigInteger(), server_default='0',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('camera_status', schema=None) as batch_op:
        batch_op.drop_column('bytes_written')
    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.drop_column('alerts_muted_until')
    op.drop_table('hub_status')
    op.drop_table('settings')
    op.drop_index('ix_locks_camera_range', table_name='locks')
    op.drop_table('locks')
    op.drop_index('ix_alerts_camera_created', table_name='alerts')
    op.drop_index('ix_alerts_delivery', table_name='alerts')
    op.drop_index('ix_alerts_created', table_name='alerts')
    op.drop_table('alerts')
    op.drop_index('ix_outages_start', table_name='outages')
    op.drop_index('ix_outages_camera_start', table_name='outages')
    op.drop_table('outages')

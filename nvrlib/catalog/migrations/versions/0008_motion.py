"""motion: motion_events, and each camera's motion settings (cameras.motion_*)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'motion_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('camera_id', sa.Integer(), nullable=False),
        sa.Column('event_key', sa.String(length=64), nullable=False),
        sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('box_x', sa.Float(), nullable=False),
        sa.Column('box_y', sa.Float(), nullable=False),
        sa.Column('box_w', sa.Float(), nullable=False),
        sa.Column('box_h', sa.Float(), nullable=False),
        sa.Column('snapshot_path', sa.String(length=512), nullable=True),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('hub_id', sa.String(length=32), server_default='main', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['camera_id'], ['cameras.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_key'),
    )
    with op.batch_alter_table('motion_events', schema=None) as batch_op:
        batch_op.create_index('ix_motion_camera_start', ['camera_id', 'start_time'], unique=False)
        batch_op.create_index('ix_motion_start', ['start_time'], unique=False)
    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.add_column(sa.Column('motion_enabled', sa.Boolean(), server_default=sa.true(),
                                      nullable=False))
        batch_op.add_column(sa.Column('motion_sensitivity', sa.Integer(), server_default='50',
                                      nullable=False))
        batch_op.add_column(sa.Column('motion_mask', sa.Text(), server_default='[]',
                                      nullable=False))
        batch_op.add_column(sa.Column('motion_alerts', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('motion_updated_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.drop_column('motion_updated_at')
        batch_op.drop_column('motion_alerts')
        batch_op.drop_column('motion_mask')
        batch_op.drop_column('motion_sensitivity')
        batch_op.drop_column('motion_enabled')
    with op.batch_alter_table('motion_events', schema=None) as batch_op:
        batch_op.drop_index('ix_motion_start')
        batch_op.drop_index('ix_motion_camera_start')
    op.drop_table('motion_events')

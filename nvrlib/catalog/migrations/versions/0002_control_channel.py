"""control channel

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('commands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('camera', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_pending', ['done_at', 'id'], unique=False)

    op.create_table('camera_status',
    sa.Column('camera_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('peer', sa.String(length=128), nullable=False),
    sa.Column('connected_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('offline_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fps', sa.Float(), nullable=False),
    sa.Column('bitrate_bps', sa.Float(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('frames', sa.BigInteger(), nullable=False),
    sa.Column('restarts', sa.Integer(), nullable=False),
    sa.Column('last_segment_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['camera_id'], ['cameras.id'], ),
    sa.PrimaryKeyConstraint('camera_id')
    )
    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('approval', sa.String(length=16), server_default='approved', nullable=False))




def downgrade():

    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.drop_column('approval')
        batch_op.drop_column('url')

    op.drop_table('camera_status')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_pending')

    op.drop_table('commands')


"""ingest tokens: per-camera tokens made in the admin panel, stored as SHA-256 hashes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ingest_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('camera', sa.String(length=64), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_ingest_tokens_camera', 'ingest_tokens', ['camera'])


def downgrade():
    op.drop_index('ix_ingest_tokens_camera', table_name='ingest_tokens')
    op.drop_table('ingest_tokens')

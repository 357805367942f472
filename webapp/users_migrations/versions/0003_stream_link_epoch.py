"""users.stream_link_epoch: the generation of a user's stream links

A stream link (webapp/stream_links.py) carries the epoch it was made in; "sign out everywhere",
a new password and disabling the account add one, so every link made before stops working.

Revision ID: u0003
Revises: u0002
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = 'u0003'
down_revision = 'u0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('stream_link_epoch', sa.Integer(), nullable=False,
                                   server_default='0'))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('stream_link_epoch')

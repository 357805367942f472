"""login sessions and failed-login counters in the database

Server-side login sessions (logout and "sign out everywhere" revoke them; they replace the
users.session_epoch counter) and the login throttle's counters, shared by every web-app process.

Revision ID: u0002
Revises: u0001
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = 'u0002'
down_revision = 'u0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'login_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('remember', sa.Boolean(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('user_agent', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_login_sessions_user_id', 'login_sessions', ['user_id'])
    op.create_index('ix_login_sessions_expires_at', 'login_sessions', ['expires_at'])
    op.create_table(
        'login_counters',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_check_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_login_counters_window_start', 'login_counters', ['window_start'])
    op.create_table(
        'login_known_addresses',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'address'),
    )
    op.create_index('ix_login_known_addresses_last_login_at', 'login_known_addresses',
                    ['last_login_at'])
    # Every session of the epoch scheme ends here: its cookies name no login_sessions row.
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_epoch')


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False,
                                   server_default='0'))
    op.drop_table('login_known_addresses')
    op.drop_table('login_counters')
    op.drop_table('login_sessions')

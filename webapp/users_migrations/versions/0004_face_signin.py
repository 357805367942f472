"""face sign-in: users.face_signin and the user_faces table (embeddings only)

Face sign-in is an optional second step after the password (docs/design/faces.md, section 5).
Only the 128-d embeddings of the pictures taken at enrollment are kept, never a picture; they
go with their user (ON DELETE CASCADE).

Revision ID: u0004
Revises: u0003
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = 'u0004'
down_revision = 'u0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('face_signin', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        'user_faces',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('embedding', sa.LargeBinary(length=512), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_user_faces_user_id', 'user_faces', ['user_id'])


def downgrade():
    op.drop_index('ix_user_faces_user_id', table_name='user_faces')
    op.drop_table('user_faces')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('face_signin')

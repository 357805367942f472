"""faces: people, face_samples, face_sightings, and each camera's face switches (cameras.faces_*)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'people',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('name_key', sa.String(length=64), nullable=False),
        sa.Column('alert', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('name_key'),
    )
    op.create_table(
        'face_samples',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('embedding', sa.LargeBinary(length=512), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('sighting_id', sa.Integer(), nullable=True),
        sa.Column('crop', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('face_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_face_samples_person_id'), ['person_id'], unique=False)
    op.create_table(
        'face_sightings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sighting_key', sa.String(length=64), nullable=False),
        sa.Column('camera_id', sa.Integer(), nullable=False),
        sa.Column('hub_id', sa.String(length=32), server_default='main', nullable=False),
        sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('distance', sa.Float(), nullable=True),
        sa.Column('box_x', sa.Float(), nullable=False),
        sa.Column('box_y', sa.Float(), nullable=False),
        sa.Column('box_w', sa.Float(), nullable=False),
        sa.Column('box_h', sa.Float(), nullable=False),
        sa.Column('face_size', sa.Integer(), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('embedding', sa.LargeBinary(length=512), nullable=True),
        sa.Column('crop_path', sa.String(length=512), nullable=True),
        sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['camera_id'], ['cameras.id'], ),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sighting_key'),
    )
    with op.batch_alter_table('face_sightings', schema=None) as batch_op:
        batch_op.create_index('ix_face_camera_start', ['camera_id', 'start_time'], unique=False)
        batch_op.create_index('ix_face_start', ['start_time'], unique=False)
        batch_op.create_index('ix_face_person_start', ['person_id', 'start_time'], unique=False)
        batch_op.create_index('ix_face_person_camera_start',
                              ['person_id', 'camera_id', 'start_time'], unique=False)
        batch_op.create_index('ix_face_erased', ['erased_at'], unique=False)
    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.add_column(sa.Column('faces_enabled', sa.Boolean(), server_default=sa.true(),
                                      nullable=False))
        batch_op.add_column(sa.Column('faces_unknown_alerts', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('faces_seen_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('cameras', schema=None) as batch_op:
        batch_op.drop_column('faces_seen_at')
        batch_op.drop_column('faces_unknown_alerts')
        batch_op.drop_column('faces_enabled')
    with op.batch_alter_table('face_sightings', schema=None) as batch_op:
        batch_op.drop_index('ix_face_erased')
        batch_op.drop_index('ix_face_person_camera_start')
        batch_op.drop_index('ix_face_person_start')
        batch_op.drop_index('ix_face_start')
        batch_op.drop_index('ix_face_camera_start')
    op.drop_table('face_sightings')
    with op.batch_alter_table('face_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_face_samples_person_id'))
    op.drop_table('face_samples')
    op.drop_table('people')

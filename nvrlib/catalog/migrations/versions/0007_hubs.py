"""several hubs on one catalog: the hubs table, and hub_id on cameras, runs, segments, commands
and hub_status

Every row of a catalog made before this revision belongs to the one hub that recorded it, and
a hub whose config names no ``hub_id`` is hub ``main``: so the rows get ``main``, and a hubs
row ``main`` takes over the storage id that was the catalog's ``storage.id`` setting
(recorder/store/identity.py). Downgrading keeps hub ``main``'s rows and storage id only, and
is refused while another hub has cameras: its footage would be listed under the wrong disk.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

DEFAULT_HUB = 'main'
STORAGE_SETTING = 'storage.id'
TABLES = ('cameras', 'runs', 'segments', 'commands', 'hub_status')


def upgrade():
    hubs = op.create_table(
        'hubs',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('storage_id', sa.String(length=64), nullable=True),
        sa.Column('storage_root', sa.String(length=1024), nullable=False, server_default=''),
        sa.Column('listen', sa.String(length=255), nullable=False, server_default=''),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_started', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('storage_id', name='uq_hubs_storage_id'),
    )
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('hub_id', sa.String(length=32), nullable=False,
                                          server_default=DEFAULT_HUB))
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_hub_start', ['hub_id', 'start_time'], unique=False)
    with op.batch_alter_table('hub_status', schema=None) as batch_op:
        batch_op.create_index('ix_hub_status_hub', ['hub_id'], unique=True)
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_hub_pending', ['hub_id', 'done_at', 'id'], unique=False)

    connection = op.get_bind()
    settings = sa.table('settings', sa.column('key', sa.String), sa.column('value', sa.Text))
    storage_id = connection.scalar(sa.select(settings.c.value)
                                   .where(settings.c.key == STORAGE_SETTING))
    has_rows = connection.scalar(sa.text('SELECT count(*) FROM cameras')) or \
        connection.scalar(sa.text('SELECT count(*) FROM hub_status'))
    if storage_id or has_rows:
        connection.execute(hubs.insert().values(
            id=DEFAULT_HUB, storage_id=storage_id or None, storage_root='', listen='',
            first_seen=sa.func.now()))
    op.execute(settings.delete().where(settings.c.key == STORAGE_SETTING))


def downgrade():
    connection = op.get_bind()
    others = connection.scalar(sa.text(
        "SELECT count(*) FROM cameras WHERE hub_id <> :main").bindparams(main=DEFAULT_HUB))
    if others:
        raise RuntimeError(
            f"cannot downgrade below 0007: {others} camera(s) belong to hubs other than "
            f"{DEFAULT_HUB!r}, and schema 0006 knows one hub only")
    storage_id = connection.scalar(sa.text(
        "SELECT storage_id FROM hubs WHERE id = :main").bindparams(main=DEFAULT_HUB))
    if storage_id:
        settings = sa.table('settings', sa.column('key', sa.String), sa.column('value', sa.Text),
                            sa.column('updated_at', sa.DateTime(timezone=True)),
                            sa.column('updated_by', sa.String))
        op.execute(settings.insert().values(key=STORAGE_SETTING, value=storage_id,
                                            updated_at=sa.func.now(), updated_by='downgrade'))
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_hub_pending')
    with op.batch_alter_table('hub_status', schema=None) as batch_op:
        batch_op.drop_index('ix_hub_status_hub')
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index('ix_segments_hub_start')
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('hub_id')
    op.drop_table('hubs')

"""lock limits: locks.admin, locks.yielded_at, locks.original_start; a reason for every lock

Locks made before this revision become viewer locks (the users database is not the catalog's
to read, and a viewer lock is the one that cannot stop recording); an admin can lock again.
Locks without a note get a placeholder reason, so they keep working and say why they have none.
The caps themselves are ``settings`` rows (``locks.max_count``, ``locks.max_hours``), absent
until an admin changes them: the defaults live in webapp/protect/limits.py.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

PLACEHOLDER_REASON = '(no reason given: locked before reasons were required)'


def upgrade():
    with op.batch_alter_table('locks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admin', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('yielded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('original_start', sa.DateTime(timezone=True),
                                      nullable=True))
    locks = sa.table('locks', sa.column('note', sa.String))
    op.execute(locks.update()
               .where(sa.or_(locks.c.note.is_(None), sa.func.trim(locks.c.note) == ''))
               .values(note=PLACEHOLDER_REASON))


def downgrade():
    # the placeholder reasons stay: they are true, and an empty note was always allowed before
    with op.batch_alter_table('locks', schema=None) as batch_op:
        batch_op.drop_column('original_start')
        batch_op.drop_column('yielded_at')
        batch_op.drop_column('admin')

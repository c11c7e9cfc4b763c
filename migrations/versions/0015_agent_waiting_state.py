"""install reports a device may send while an update waits for the operator

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


_BEFORE = (
    "status IN ('downloading', 'downloaded', 'verified', 'installing', 'installed',"
    " 'failed', 'rolled_back')"
)
_AFTER = (
    "status IN ('waiting', 'downloading', 'downloaded', 'verified', 'installing',"
    " 'installed', 'failed', 'rolled_back')"
)


def upgrade() -> None:
    with op.batch_alter_table('install_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_install_events_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_install_events_status'), _AFTER)


def downgrade() -> None:
    # A device's `waiting` steps have no place in the older schema.
    op.execute("DELETE FROM install_events WHERE status = 'waiting'")
    with op.batch_alter_table('install_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_install_events_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_install_events_status'), _BEFORE)

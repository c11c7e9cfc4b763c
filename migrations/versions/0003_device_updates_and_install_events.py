"""device updates and install events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 13:38:21.296955
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('install_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_text', sa.String(length=2000), nullable=True),
    sa.Column('occurred_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('downloading', 'downloaded', 'verified', 'installing', 'installed', 'failed', 'rolled_back')", name=op.f('ck_install_events_status')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_install_events_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_install_events_release_id_releases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_install_events')),
    sa.UniqueConstraint('device_id', 'event_id', name=op.f('uq_install_events_device_id_event_id'))
    )
    with op.batch_alter_table('install_events', schema=None) as batch_op:
        batch_op.create_index('ix_install_events_device_id_id', ['device_id', 'id'], unique=False)
        batch_op.create_index('ix_install_events_release_id_status', ['release_id', 'status'], unique=False)

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('inventory', sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('hardware_key', sa.String(length=2000), nullable=False, server_default=',')
        )
        batch_op.add_column(
            sa.Column('downloads', sa.Integer(), nullable=False, server_default='0')
        )
    # Existing releases: derive the matchable key from their hardware list.
    releases = sa.table(
        'releases', sa.column('id', sa.Integer), sa.column('hardware_revisions', sa.JSON),
        sa.column('hardware_key', sa.String),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(releases.c.id, releases.c.hardware_revisions)):
        key = ',' + ','.join(row.hardware_revisions or []) + ','
        bind.execute(releases.update().where(releases.c.id == row.id).values(hardware_key=key))



def downgrade() -> None:
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_column('downloads')
        batch_op.drop_column('hardware_key')

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('inventory')

    with op.batch_alter_table('install_events', schema=None) as batch_op:
        batch_op.drop_index('ix_install_events_release_id_status')
        batch_op.drop_index('ix_install_events_device_id_id')

    op.drop_table('install_events')

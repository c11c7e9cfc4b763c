"""rollouts: waves, pins and exclusions, decisions; notifications not about a ticket

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 18:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_ACTIVE = "state IN ('running', 'paused', 'halted')"


def upgrade() -> None:
    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('current_wave', sa.Integer(), nullable=False),
    sa.Column('wave_started_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('gates', sa.JSON(), nullable=False),
    sa.Column('waves', sa.JSON(), nullable=False),
    sa.Column('excluded_hardware', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('halted_reason', sa.String(length=2000), nullable=True),
    sa.Column('emergency', sa.Boolean(), nullable=False),
    sa.Column('override_reason', sa.String(length=2000), nullable=True),
    sa.CheckConstraint("state IN ('planned', 'running', 'paused', 'halted', 'aborted', 'completed')", name=op.f('ck_rollouts_state')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_rollouts_channel_id_channels'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_rollouts_product_id_products'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_rollouts_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.create_index('ix_rollouts_product_id_id', ['product_id', 'id'], unique=False)
        batch_op.create_index('uq_rollouts_active_release_channel', ['release_id', 'channel_id'], unique=True, postgresql_where=sa.text(_ACTIVE), sqlite_where=sa.text(_ACTIVE))

    op.create_table('rollout_devices',
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.CheckConstraint("kind IN ('pin', 'exclude')", name=op.f('ck_rollout_devices_kind')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_rollout_devices_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_devices_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rollout_id', 'device_id', name=op.f('pk_rollout_devices'))
    )
    op.create_table('rollout_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_decisions_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_decisions'))
    )
    with op.batch_alter_table('rollout_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_rollout_decisions_rollout_id_id', ['rollout_id', 'id'], unique=False)

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='ticket', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('rollout_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_rollout_decisions_rollout_id_id')

    op.drop_table('rollout_decisions')
    op.drop_table('rollout_devices')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index('uq_rollouts_active_release_channel', postgresql_where=sa.text(_ACTIVE), sqlite_where=sa.text(_ACTIVE))
        batch_op.drop_index('ix_rollouts_product_id_id')

    op.drop_table('rollouts')

"""maintenance windows and customer approval of releases, per organisation

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 19:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updates_need_approval', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('update_settings_generation', sa.Integer(), server_default='0', nullable=False))

    op.create_table('maintenance_windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('days', sa.JSON(), nullable=False),
    sa.Column('start', sa.Time(), nullable=True),
    sa.Column('cron', sa.String(length=100), nullable=True),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=100), server_default='', nullable=False),
    sa.CheckConstraint("kind IN ('weekly', 'cron')", name=op.f('ck_maintenance_windows_kind')),
    sa.CheckConstraint('duration_minutes BETWEEN 15 AND 1440', name=op.f('ck_maintenance_windows_duration_minutes')),
    sa.CheckConstraint("(kind = 'weekly' AND start IS NOT NULL AND cron IS NULL) OR (kind = 'cron' AND cron IS NOT NULL AND start IS NULL)", name=op.f('ck_maintenance_windows_kind_fields')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_maintenance_windows_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_windows'))
    )
    with op.batch_alter_table('maintenance_windows', schema=None) as batch_op:
        batch_op.create_index('ix_maintenance_windows_organisation_id', ['organisation_id'], unique=False)

    op.create_table('release_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('all_devices', sa.Boolean(), nullable=False),
    sa.Column('approved_by', sa.String(length=254), nullable=False),
    sa.Column('approved_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('service_request_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_release_approvals_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_approvals_release_id_releases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_request_id'], ['service_requests.id'], name=op.f('fk_release_approvals_service_request_id_service_requests'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_approvals'))
    )
    with op.batch_alter_table('release_approvals', schema=None) as batch_op:
        batch_op.create_index('ix_release_approvals_organisation_id_release_id', ['organisation_id', 'release_id'], unique=False)

    op.create_table('release_approval_devices',
    sa.Column('approval_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['approval_id'], ['release_approvals.id'], name=op.f('fk_release_approval_devices_approval_id_release_approvals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_release_approval_devices_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('approval_id', 'device_id', name=op.f('pk_release_approval_devices'))
    )


def downgrade() -> None:
    op.drop_table('release_approval_devices')
    with op.batch_alter_table('release_approvals', schema=None) as batch_op:
        batch_op.drop_index('ix_release_approvals_organisation_id_release_id')
    op.drop_table('release_approvals')
    with op.batch_alter_table('maintenance_windows', schema=None) as batch_op:
        batch_op.drop_index('ix_maintenance_windows_organisation_id')
    op.drop_table('maintenance_windows')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_column('update_settings_generation')
        batch_op.drop_column('updates_need_approval')

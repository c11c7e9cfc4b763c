"""service requests' response deadline, pre-installation notices, customer representatives, hotline change notices

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancelled_by', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.String(length=2000), server_default='', nullable=False))
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('responded_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('responded_by', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('response', sa.String(length=2000), server_default='', nullable=False))
    # Requests recorded before: received when they were opened.
    op.execute("UPDATE service_requests SET received_at = opened_at")
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.alter_column('received_at', existing_type=upgrade_server.database.UTCDateTime(timezone=True), nullable=False)

    op.create_table('service_request_breaches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.String(length=20), nullable=False),
    sa.Column('due_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('met_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('late_minutes', sa.Integer(), nullable=False),
    sa.Column('recorded_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['service_requests.id'], name=op.f('fk_service_request_breaches_request_id_service_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_request_breaches')),
    sa.UniqueConstraint('request_id', 'deadline', name=op.f('uq_service_request_breaches_request_id_deadline'))
    )

    op.create_table('pre_installation_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('site', sa.String(length=200), nullable=False),
    sa.Column('expected_on', sa.Date(), nullable=True),
    sa.Column('document', sa.String(length=20000), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('sent_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_via', sa.String(length=8), nullable=False),
    sa.Column('sent_by', sa.String(length=254), nullable=False),
    sa.Column('received_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_by', sa.String(length=254), nullable=True),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("sent_via IN ('email', 'post', 'hand', 'portal')", name=op.f('ck_pre_installation_notices_sent_via')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_pre_installation_notices_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pre_installation_notices'))
    )
    with op.batch_alter_table('pre_installation_notices', schema=None) as batch_op:
        batch_op.create_index('ix_pre_installation_notices_organisation_id', ['organisation_id'], unique=False)
    op.create_table('pre_installation_notice_devices',
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_pre_installation_notice_devices_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['notice_id'], ['pre_installation_notices.id'], name=op.f('fk_pre_installation_notice_devices_notice_id_pre_installation_notices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('notice_id', 'device_id', name=op.f('pk_pre_installation_notice_devices'))
    )

    op.create_table('customer_representatives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('training_session_id', sa.Integer(), nullable=True),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_customer_representatives_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['training_session_id'], ['service_sessions.id'], name=op.f('fk_customer_representatives_training_session_id_service_sessions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_representatives'))
    )
    with op.batch_alter_table('customer_representatives', schema=None) as batch_op:
        batch_op.create_index('ix_customer_representatives_organisation_id', ['organisation_id'], unique=False)

    op.create_table('hotline_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('previous_number', sa.String(length=64), nullable=False),
    sa.Column('changed_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=2000), nullable=False),
    sa.Column('recorded_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=254), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hotline_changes'))
    )
    op.create_table('hotline_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('told_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('told_via', sa.String(length=8), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('recorded_by', sa.String(length=254), nullable=False),
    sa.CheckConstraint("told_via IN ('email', 'post', 'fax', 'hand')", name=op.f('ck_hotline_notices_told_via')),
    sa.ForeignKeyConstraint(['change_id'], ['hotline_changes.id'], name=op.f('fk_hotline_notices_change_id_hotline_changes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_hotline_notices_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hotline_notices')),
    sa.UniqueConstraint('change_id', 'organisation_id', name=op.f('uq_hotline_notices_change_id_organisation_id'))
    )


def downgrade() -> None:
    op.drop_table('hotline_notices')
    op.drop_table('hotline_changes')
    with op.batch_alter_table('customer_representatives', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_representatives_organisation_id')
    op.drop_table('customer_representatives')
    op.drop_table('pre_installation_notice_devices')
    with op.batch_alter_table('pre_installation_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_pre_installation_notices_organisation_id')
    op.drop_table('pre_installation_notices')
    op.drop_table('service_request_breaches')
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.drop_column('response')
        batch_op.drop_column('responded_by')
        batch_op.drop_column('responded_at')
        batch_op.drop_column('received_at')
    with op.batch_alter_table('service_sessions', schema=None) as batch_op:
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_by')
        batch_op.drop_column('cancelled_at')

"""ticket deadlines by the device's site, the official working-day calendar with staff exceptions, emergencies

Sites: each organisation's distinct device site names become its sites (with
the organisation's region and time zone: NULL), devices point at them, and
the free-text devices.site column goes. Tickets keep the time zone their
deadlines use (existing ones: their organisation's). Staff exceptions to the
working-day calendar get their table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("region IN ('beijing', 'other')", name=op.f('ck_sites_region')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_sites_organisation_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites')),
    sa.UniqueConstraint('organisation_id', 'name', name=op.f('uq_sites_organisation_id_name'))
    )
    op.create_table('working_day_exceptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('working', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_working_day_exceptions_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_working_day_exceptions'))
    )
    with op.batch_alter_table('working_day_exceptions', schema=None) as batch_op:
        batch_op.create_index('uq_working_day_exceptions_organisation_day', ['organisation_id', 'day'], unique=True, sqlite_where=sa.text('organisation_id IS NOT NULL'), postgresql_where=sa.text('organisation_id IS NOT NULL'))
        batch_op.create_index('uq_working_day_exceptions_global_day', ['day'], unique=True, sqlite_where=sa.text('organisation_id IS NULL'), postgresql_where=sa.text('organisation_id IS NULL'))

    # Devices: the free-text site becomes a site of the device's organisation.
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))
    op.execute(
        "INSERT INTO sites (organisation_id, name, created_at)"
        " SELECT organisation_id, site, MIN(created_at) FROM devices"
        " WHERE site <> '' GROUP BY organisation_id, site"
    )
    op.execute(
        "UPDATE devices SET site_id = (SELECT sites.id FROM sites"
        " WHERE sites.organisation_id = devices.organisation_id AND sites.name = devices.site)"
        " WHERE site <> ''"
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index('ix_devices_site_id', ['site_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_devices_site_id_sites'), 'sites', ['site_id'], ['id'], ondelete='RESTRICT')
        batch_op.drop_column('site')

    # Tickets: the zone their deadlines use; until now, the organisation's.
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE tickets SET timezone = (SELECT organisations.timezone FROM organisations"
        " WHERE organisations.id = tickets.organisation_id)"
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.alter_column('timezone', existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('timezone')

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site', sa.String(length=200), nullable=False, server_default=''))
    op.execute(
        "UPDATE devices SET site = (SELECT sites.name FROM sites WHERE sites.id = devices.site_id)"
        " WHERE site_id IS NOT NULL"
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.alter_column('site', existing_type=sa.String(length=200), server_default=None)
        batch_op.drop_constraint(batch_op.f('fk_devices_site_id_sites'), type_='foreignkey')
        batch_op.drop_index('ix_devices_site_id')
        batch_op.drop_column('site_id')

    with op.batch_alter_table('working_day_exceptions', schema=None) as batch_op:
        batch_op.drop_index('uq_working_day_exceptions_global_day', sqlite_where=sa.text('organisation_id IS NULL'), postgresql_where=sa.text('organisation_id IS NULL'))
        batch_op.drop_index('uq_working_day_exceptions_organisation_day', sqlite_where=sa.text('organisation_id IS NOT NULL'), postgresql_where=sa.text('organisation_id IS NOT NULL'))

    op.drop_table('working_day_exceptions')
    op.drop_table('sites')

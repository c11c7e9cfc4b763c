"""hawkBit DDI: the artifact's sha1 and md5, the release a device is part-way
through installing, and organisations' gateway tokens

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 13:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_sha1', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('artifact_md5', sa.String(length=32), nullable=True))
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('installing_release_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_devices_installing_release_id_releases'),
            'releases', ['installing_release_id'], ['id'], ondelete='SET NULL',
        )
    op.create_table('gateway_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_gateway_tokens_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_gateway_tokens_token_hash'))
    )
    with op.batch_alter_table('gateway_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_gateway_tokens_organisation_id', ['organisation_id'], unique=False)
    # A device whose last install step was not an outcome is part-way through
    # that release (the sha1 and md5 of older releases are taken on first use).
    op.execute(
        "UPDATE devices SET installing_release_id = ("
        " SELECT e.release_id FROM install_events e WHERE e.device_id = devices.id"
        " ORDER BY e.id DESC LIMIT 1)"
        " WHERE EXISTS (SELECT 1 FROM install_events e WHERE e.device_id = devices.id"
        " AND e.release_id IS NOT NULL"
        " AND e.status NOT IN ('installed', 'failed', 'rolled_back')"
        " AND e.id = (SELECT max(l.id) FROM install_events l WHERE l.device_id = devices.id))"
    )


def downgrade() -> None:
    with op.batch_alter_table('gateway_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_gateway_tokens_organisation_id')
    op.drop_table('gateway_tokens')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_devices_installing_release_id_releases'), type_='foreignkey')
        batch_op.drop_column('installing_release_id')
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_column('artifact_md5')
        batch_op.drop_column('artifact_sha1')

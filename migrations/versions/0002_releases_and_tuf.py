"""releases and tuf

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:07:16.653853
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_channels_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channels')),
    sa.UniqueConstraint('product_id', 'name', name=op.f('uq_channels_product_id_name')),
    sa.UniqueConstraint('product_id', 'rank', name=op.f('uq_channels_product_id_rank'))
    )
    op.create_table('releases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('version_key', sa.LargeBinary(length=200), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('artifact_size', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('target_path', sa.String(length=300), nullable=False),
    sa.Column('min_from_version', sa.String(length=64), nullable=True),
    sa.Column('min_from_key', sa.LargeBinary(length=200), nullable=True),
    sa.Column('security_fix', sa.Boolean(), nullable=False),
    sa.Column('notes', sa.JSON(), nullable=False),
    sa.Column('guidance', sa.JSON(), nullable=False),
    sa.Column('hardware_revisions', sa.JSON(), nullable=False),
    sa.Column('requirements', sa.JSON(), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('published_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_reason', sa.String(length=2000), nullable=True),
    sa.CheckConstraint("status IN ('pending-signatures', 'published', 'withdrawn')", name=op.f('ck_releases_status')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_releases_product_id_products'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_releases')),
    sa.UniqueConstraint('product_id', 'version', name=op.f('uq_releases_product_id_version')),
    sa.UniqueConstraint('product_id', 'version_key', name=op.f('uq_releases_product_id_version_key'))
    )
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_releases_artifact_sha256'), ['artifact_sha256'], unique=False)
        batch_op.create_index('ix_releases_product_status_key', ['product_id', 'status', 'version_key'], unique=False)

    op.create_table('tuf_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('keyid', sa.String(length=64), nullable=False),
    sa.Column('public', sa.JSON(), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('holder', sa.String(length=254), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_tuf_keys_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tuf_keys')),
    sa.UniqueConstraint('product_id', 'role', 'keyid', name=op.f('uq_tuf_keys_product_id_role_keyid'))
    )
    op.create_table('tuf_metadata',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('expires', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_tuf_metadata_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tuf_metadata')),
    sa.UniqueConstraint('product_id', 'role', 'version', name=op.f('uq_tuf_metadata_product_id_role_version'))
    )
    with op.batch_alter_table('tuf_metadata', schema=None) as batch_op:
        batch_op.create_index('ix_tuf_metadata_current', ['product_id', 'role', 'version'], unique=False)

    op.create_table('tuf_repositories',
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('bin_bits', sa.Integer(), nullable=False),
    sa.Column('offline_roles', sa.JSON(), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_tuf_repositories_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_tuf_repositories'))
    )
    op.create_table('release_channels',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('added_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_release_channels_channel_id_channels'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_channels_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', 'channel_id', name=op.f('pk_release_channels'))
    )
    op.create_table('tuf_signing_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('unsigned', sa.LargeBinary(), nullable=False),
    sa.Column('signatures', sa.JSON(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_tuf_signing_requests_product_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_tuf_signing_requests_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tuf_signing_requests'))
    )
    with op.batch_alter_table('tuf_signing_requests', schema=None) as batch_op:
        batch_op.create_index('ix_tuf_signing_requests_open', ['product_id', 'state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tuf_signing_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_tuf_signing_requests_open')

    op.drop_table('tuf_signing_requests')
    op.drop_table('release_channels')
    op.drop_table('tuf_repositories')
    with op.batch_alter_table('tuf_metadata', schema=None) as batch_op:
        batch_op.drop_index('ix_tuf_metadata_current')

    op.drop_table('tuf_metadata')
    op.drop_table('tuf_keys')
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_index('ix_releases_product_status_key')
        batch_op.drop_index(batch_op.f('ix_releases_artifact_sha256'))

    op.drop_table('releases')
    op.drop_table('channels')

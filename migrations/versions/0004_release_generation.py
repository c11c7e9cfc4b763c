"""release generation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 13:54:51.281350
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('release_generation', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('release_generation')


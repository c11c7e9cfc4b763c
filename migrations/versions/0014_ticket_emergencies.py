"""emergencies: marked by a product's level rule or by staff, with the 10-minute reaction

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import upgrade_server.database


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('emergency_levels', sa.JSON(), server_default='[1]', nullable=False))

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('emergency_levels', sa.JSON(), server_default='[1]', nullable=False))
        batch_op.add_column(sa.Column('emergency_marks', sa.JSON(), server_default='[]', nullable=False))

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_at', upgrade_server.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancelled_reason', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('cancelled_reason')
        batch_op.drop_column('cancelled_at')

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('emergency_marks')
        batch_op.drop_column('emergency_levels')

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('emergency_levels')

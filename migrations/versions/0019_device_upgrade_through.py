"""devices: the last day of upgrade coverage as a date (indexed), and an index
for the fleet by product, version and hardware revision

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 09:00:00.000000
"""
from datetime import date

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upgrade_through', sa.Date(), nullable=True))
        batch_op.create_index('ix_devices_upgrade_through', ['upgrade_through'], unique=False)
        batch_op.create_index('ix_devices_product_version_hardware', ['product_id', 'current_version', 'hardware_revision_id'], unique=False)
    # Filled from the stored windows' "through" (the JSON keeps it as text).
    devices = sa.table('devices', sa.column('id', sa.Integer), sa.column('upgrade_windows', sa.JSON), sa.column('upgrade_through', sa.Date))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(devices.c.id, devices.c.upgrade_windows)
            .where(devices.c.id > last, devices.c.upgrade_windows.is_not(None))
            .order_by(devices.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        values = [
            {"_id": row.id, "t": date.fromisoformat(row.upgrade_windows["through"])}
            for row in rows
            if (row.upgrade_windows or {}).get("through")
        ]
        if values:
            conn.execute(
                devices.update().where(devices.c.id == sa.bindparam("_id")).values(upgrade_through=sa.bindparam("t")),
                values,
            )
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_product_version_hardware')
        batch_op.drop_index('ix_devices_upgrade_through')
        batch_op.drop_column('upgrade_through')

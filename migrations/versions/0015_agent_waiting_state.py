"""install reports a device may send while an update waits for the operator

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

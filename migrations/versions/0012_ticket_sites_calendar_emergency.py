"""ticket deadlines by the device's site, the official working-day calendar with staff exceptions, emergencies

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

"""service requests' response deadline, pre-installation notices, customer representatives, hotline change notices

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

"""emergencies: marked by a product's level rule or by staff, with the 10-minute reaction

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

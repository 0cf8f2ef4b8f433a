"""refresh token scope kept when an access token is narrowed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tokens', sa.Column('refresh_scope', sa.String(length=500), nullable=True))


def downgrade() -> None:
    op.drop_column('tokens', 'refresh_scope')

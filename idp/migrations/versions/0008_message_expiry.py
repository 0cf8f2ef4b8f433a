"""messages that are pointless after a time (one-time codes) expire instead of being sent late

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('messages', sa.Column('expires_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column('messages', 'expires_at')

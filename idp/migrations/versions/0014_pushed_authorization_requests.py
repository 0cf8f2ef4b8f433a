"""A per-client requirement of pushed authorization requests (RFC 9126 6)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Off for every client registered so far: they keep sending their requests to /authorize.
    op.add_column('clients', sa.Column('require_pushed_authorization_requests', sa.Boolean(),
                                       server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.drop_column('require_pushed_authorization_requests')

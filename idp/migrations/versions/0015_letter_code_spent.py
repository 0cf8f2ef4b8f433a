"""the digest of a letter's code once used, while the account waits for its activation link

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('accounts', sa.Column('letter_code_spent_digest', sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('letter_code_spent_digest')

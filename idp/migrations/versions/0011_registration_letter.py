"""an account awaiting its activation code by post: the code's digest, validity and tries

Revision ID: 0011
Revises: 0010_letter
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010_letter'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('accounts', sa.Column('letter_code_digest', sa.String(64), nullable=True))
    op.add_column('accounts', sa.Column('letter_code_expires_at', sa.DateTime(), nullable=True))
    op.add_column('accounts', sa.Column('letter_code_tries', sa.Integer(), nullable=False,
                                        server_default='0'))


def downgrade() -> None:
    op.drop_column('accounts', 'letter_code_tries')
    op.drop_column('accounts', 'letter_code_expires_at')
    op.drop_column('accounts', 'letter_code_digest')

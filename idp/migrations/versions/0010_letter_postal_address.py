"""members' postal address: where a letter goes when the registry has no email and no mobile

Revision ID: 0010_letter
Revises: 0009
Create Date: 2026-12-03 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_letter'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_line1', sa.String(length=38), nullable=True))
        batch_op.add_column(sa.Column('address_line2', sa.String(length=38), nullable=True))
        batch_op.add_column(sa.Column('address_line3', sa.String(length=38), nullable=True))
        batch_op.add_column(sa.Column('postcode', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('city', sa.String(length=38), nullable=True))
        batch_op.add_column(sa.Column('country', sa.String(length=2), server_default='FR',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        for column in ('country', 'city', 'postcode', 'address_line3', 'address_line2',
                       'address_line1'):
            batch_op.drop_column(column)

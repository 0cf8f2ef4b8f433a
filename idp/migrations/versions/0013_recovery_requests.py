"""Recovery requests, recorded by the pages and carried out by the worker

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'recovery_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('typed', sa.JSON(), nullable=False),
        sa.Column('locale', sa.String(length=8), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_requests')),
    )


def downgrade() -> None:
    op.drop_table('recovery_requests')

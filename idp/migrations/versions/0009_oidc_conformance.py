"""PKCE required per client, a per-client refresh token lifetime, claims consented by name

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every client registered so far is held to PKCE too (RFC 9700 2.1.1); an operator exempts
    # a legacy confidential client with `idp clients update CLIENT_ID --no-pkce`.
    op.add_column('clients', sa.Column('require_pkce', sa.Boolean(), server_default=sa.true(),
                                       nullable=False))
    op.add_column('clients', sa.Column('refresh_token_ttl', sa.Integer(), nullable=True))
    op.add_column('consents', sa.Column('claims', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consents') as batch:
        batch.drop_column('claims')
    with op.batch_alter_table('clients') as batch:
        batch.drop_column('refresh_token_ttl')
        batch.drop_column('require_pkce')

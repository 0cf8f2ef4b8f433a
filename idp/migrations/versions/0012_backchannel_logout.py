"""Back-channel logout URIs of clients; provider sessions and the clients each signed in to

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('clients', sa.Column('backchannel_logout_uri', sa.String(length=2000),
                                       nullable=True))
    op.add_column('clients', sa.Column('backchannel_logout_session_required', sa.Boolean(),
                                       server_default=sa.false(), nullable=False))
    # A logout token's message is addressed to the client's URI, as long as a redirect URI.
    with op.batch_alter_table('messages') as batch:
        batch.alter_column('recipient', existing_type=sa.String(length=254),
                           type_=sa.String(length=2000))
    # A session's end expires the codes issued to it and not yet redeemed.
    op.create_index(op.f('ix_authorization_codes_sid'), 'authorization_codes', ['sid'])
    op.create_table(
        'provider_sessions',
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('tenant', sa.String(length=32), nullable=False),
        sa.Column('account_id', sa.String(length=36), nullable=False),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column('end_reason', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_provider_sessions_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sid', name=op.f('pk_provider_sessions')),
    )
    op.create_index(op.f('ix_provider_sessions_account_id'), 'provider_sessions', ['account_id'])
    op.create_table(
        'session_clients',
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('first_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['sid'], ['provider_sessions.sid'],
                                name=op.f('fk_session_clients_sid_provider_sessions'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'],
                                name=op.f('fk_session_clients_client_id_clients'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sid', 'client_id', name=op.f('pk_session_clients')),
    )


def downgrade() -> None:
    op.drop_table('session_clients')
    op.drop_index(op.f('ix_provider_sessions_account_id'), table_name='provider_sessions')
    op.drop_table('provider_sessions')
    op.drop_index(op.f('ix_authorization_codes_sid'), table_name='authorization_codes')
    with op.batch_alter_table('messages') as batch:
        batch.alter_column('recipient', existing_type=sa.String(length=2000),
                           type_=sa.String(length=254))
    with op.batch_alter_table('clients') as batch:
        batch.drop_column('backchannel_logout_session_required')
        batch.drop_column('backchannel_logout_uri')

"""account lifecycle: sign-up (verified e-mail, accepted terms), single-use links, request throttle

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 11:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('customers', sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('customers', sa.Column('terms_version', sa.String(length=20), nullable=True))
    op.add_column('customers', sa.Column('terms_accepted_at', sa.DateTime(timezone=True), nullable=True))
    # Customers from before sign-up existed were set up by the provider: their address counts as verified.
    op.execute("UPDATE customers SET email_verified_at = created_at")
    op.create_table('account_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index(op.f('ix_account_tokens_customer_id'), 'account_tokens', ['customer_id'], unique=False)
    op.create_table('account_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=254), nullable=False),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_account_requests_subject_at', 'account_requests', ['kind', 'subject', 'at'], unique=False)
    op.create_index('ix_account_requests_ip_at', 'account_requests', ['kind', 'client_ip', 'at'], unique=False)


def downgrade():
    op.drop_index('ix_account_requests_ip_at', table_name='account_requests')
    op.drop_index('ix_account_requests_subject_at', table_name='account_requests')
    op.drop_table('account_requests')
    op.drop_index(op.f('ix_account_tokens_customer_id'), table_name='account_tokens')
    op.drop_table('account_tokens')
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('terms_accepted_at')
        batch.drop_column('terms_version')
        batch.drop_column('email_verified_at')

"""catalog: product families, contract lifecycle, ips, login links, traffic

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:51:52.440620
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('product_prices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('product_id', sa.String(length=50), nullable=False),
    sa.Column('price_net', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('vat_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_product_prices_product_id'), 'product_prices', ['product_id'], unique=False)
    op.create_table('ip_addresses',
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], ),
    sa.PrimaryKeyConstraint('address')
    )
    op.create_index(op.f('ix_ip_addresses_contract_id'), 'ip_addresses', ['contract_id'], unique=False)
    op.create_table('login_tokens',
    sa.Column('jti', sa.String(length=36), nullable=False),
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('panel', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], ),
    sa.PrimaryKeyConstraint('jti')
    )
    op.create_index(op.f('ix_login_tokens_contract_id'), 'login_tokens', ['contract_id'], unique=False)
    op.create_table('server_traffic',
    sa.Column('contract_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('gb', sa.Numeric(precision=14, scale=3), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], ),
    sa.PrimaryKeyConstraint('contract_id', 'day', name='pk_server_traffic')
    )
    op.add_column('contracts', sa.Column('kind', sa.String(length=20), server_default='domain', nullable=False))
    op.add_column('contracts', sa.Column('label', sa.String(length=253), nullable=True))
    op.add_column('contracts', sa.Column('description', sa.String(length=500), server_default='', nullable=False))
    op.add_column('contracts', sa.Column('options', sa.JSON(), server_default='[]', nullable=False))
    op.add_column('contracts', sa.Column('notice_days', sa.Integer(), server_default='30', nullable=False))
    op.add_column('contracts', sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('contracts', sa.Column('end_date', sa.Date(), nullable=True))
    op.add_column('contracts', sa.Column('terminated_at', sa.DateTime(timezone=True), nullable=True))
    # Batch: SQLite (make run's default) cannot ALTER constraints; on PostgreSQL plain ALTERs.
    with op.batch_alter_table('contracts') as batch:
        batch.add_column(sa.Column('pending_product_id', sa.String(length=50), nullable=True))
        batch.create_foreign_key('fk_contracts_pending_product', 'products', ['pending_product_id'], ['id'])
    op.add_column('contracts', sa.Column('pending_price_net', sa.Numeric(precision=12, scale=2), nullable=True))
    op.add_column('contracts', sa.Column('pending_effective_date', sa.Date(), nullable=True))
    op.create_index('uq_contracts_live_server_name', 'contracts', ['label'], unique=True,
                    postgresql_where=sa.text("kind = 'server' AND status <> 'terminated'"),
                    sqlite_where=sa.text("kind = 'server' AND status <> 'terminated'"))
    op.add_column('products', sa.Column('description', sa.String(length=500), server_default='', nullable=False))
    op.add_column('products', sa.Column('family', sa.String(length=50), nullable=True))
    op.add_column('products', sa.Column('rank', sa.Integer(), nullable=True))
    op.add_column('products', sa.Column('attributes', sa.JSON(), server_default='{}', nullable=False))
    op.add_column('products', sa.Column('notice_days', sa.Integer(), server_default='30', nullable=False))
    op.add_column('products', sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False))
    op.add_column('products', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # Tables that reference contracts first (SQLite's batch copy of contracts needs that).
    op.drop_table('server_traffic')
    op.drop_index(op.f('ix_login_tokens_contract_id'), table_name='login_tokens')
    op.drop_table('login_tokens')
    op.drop_index(op.f('ix_ip_addresses_contract_id'), table_name='ip_addresses')
    op.drop_table('ip_addresses')
    op.drop_index(op.f('ix_product_prices_product_id'), table_name='product_prices')
    op.drop_table('product_prices')
    op.drop_column('products', 'updated_at')
    op.drop_column('products', 'active')
    op.drop_column('products', 'notice_days')
    op.drop_column('products', 'attributes')
    op.drop_column('products', 'rank')
    op.drop_column('products', 'family')
    op.drop_column('products', 'description')
    with op.batch_alter_table('contracts') as batch:
        batch.drop_constraint('fk_contracts_pending_product', type_='foreignkey')
    op.drop_index('uq_contracts_live_server_name', table_name='contracts',
                  postgresql_where=sa.text("kind = 'server' AND status <> 'terminated'"),
                  sqlite_where=sa.text("kind = 'server' AND status <> 'terminated'"))
    op.drop_column('contracts', 'pending_effective_date')
    op.drop_column('contracts', 'pending_price_net')
    op.drop_column('contracts', 'pending_product_id')
    op.drop_column('contracts', 'terminated_at')
    op.drop_column('contracts', 'end_date')
    op.drop_column('contracts', 'cancelled_at')
    op.drop_column('contracts', 'notice_days')
    op.drop_column('contracts', 'options')
    op.drop_column('contracts', 'description')
    op.drop_column('contracts', 'label')
    op.drop_column('contracts', 'kind')

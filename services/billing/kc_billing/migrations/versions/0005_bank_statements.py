"""bank statements and SEPA: payments aimed at an invoice, reversals, Klärfälle, collections

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # batch: SQLite (make run) rebuilds the table; on PostgreSQL these are plain ALTERs.
    with op.batch_alter_table('bookings') as batch:
        batch.add_column(sa.Column('applies_to_invoice_id', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('reverses_booking_id', sa.BigInteger(), nullable=True))
        batch.create_foreign_key('fk_bookings_applies_to_invoice', 'invoices',
                                 ['applies_to_invoice_id'], ['id'])
        batch.create_unique_constraint('uq_bookings_reverses_booking_id', ['reverses_booking_id'])
    op.create_table(
        'bank_clarifications',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('transaction_id', sa.String(length=100), nullable=False, unique=True),
        sa.Column('account', sa.String(length=34), nullable=False),
        sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('value_date', sa.Date(), nullable=True),
        sa.Column('reference', sa.Text(), nullable=False),
        sa.Column('payer', sa.String(length=140), nullable=True),
        sa.Column('payer_iban', sa.String(length=34), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('customer_id', sa.BigInteger(), nullable=True),
        sa.Column('payment_id', sa.String(length=36), nullable=True),
        sa.Column('assigned_by', sa.String(length=100), nullable=True),
        sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_bank_clarifications_status', 'bank_clarifications', ['status', 'id'])
    op.create_table(
        'sepa_collections',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('due_date', sa.Date(), nullable=False, unique=True),
        sa.Column('message_id', sa.String(length=35), nullable=False, unique=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_by', sa.String(length=100), nullable=True),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('pain008', sa.Text(), nullable=True),
    )
    op.create_table(
        'sepa_debits',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('collection_id', sa.BigInteger(), sa.ForeignKey('sepa_collections.id'),
                  nullable=False),
        sa.Column('invoice_id', sa.BigInteger(), sa.ForeignKey('invoices.id'), nullable=False,
                  unique=True),
        sa.Column('customer_id', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('end_to_end_id', sa.String(length=35), nullable=False, unique=True),
        sa.Column('mandate_reference', sa.String(length=35), nullable=False),
        sa.Column('mandate_date', sa.Date(), nullable=False),
        sa.Column('iban', sa.String(length=34), nullable=False),
        sa.Column('sequence_type', sa.String(length=4), nullable=False),
        sa.Column('payment_id', sa.String(length=36), sa.ForeignKey('payments.id'), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('return_reason', sa.String(length=4), nullable=True),
        sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_sepa_debits_collection_id', 'sepa_debits', ['collection_id'])
    op.create_index('ix_sepa_debits_customer_id', 'sepa_debits', ['customer_id'])


def downgrade():
    op.drop_index('ix_sepa_debits_customer_id', 'sepa_debits')
    op.drop_index('ix_sepa_debits_collection_id', 'sepa_debits')
    op.drop_table('sepa_debits')
    op.drop_table('sepa_collections')
    op.drop_index('ix_bank_clarifications_status', 'bank_clarifications')
    op.drop_table('bank_clarifications')
    with op.batch_alter_table('bookings') as batch:
        batch.drop_constraint('uq_bookings_reverses_booking_id', type_='unique')
        batch.drop_constraint('fk_bookings_applies_to_invoice', type_='foreignkey')
        batch.drop_column('reverses_booking_id')
        batch.drop_column('applies_to_invoice_id')

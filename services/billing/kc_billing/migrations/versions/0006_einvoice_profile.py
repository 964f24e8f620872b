"""e-invoice profile per customer (EN 16931 / XRechnung with Leitweg-ID); credit notes name the
invoice they correct

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 11:45:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # batch: SQLite (make run) rebuilds the tables; on PostgreSQL these are plain ALTERs.
    with op.batch_alter_table('payment_details') as batch:
        batch.add_column(sa.Column('einvoice_profile', sa.String(length=20), server_default='en16931',
                                   nullable=False))
        batch.add_column(sa.Column('leitweg_id', sa.String(length=46), nullable=True))
    with op.batch_alter_table('invoices') as batch:
        batch.add_column(sa.Column('einvoice_profile', sa.String(length=20), server_default='en16931',
                                   nullable=False))
        batch.add_column(sa.Column('preceding_number', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('invoices') as batch:
        batch.drop_column('preceding_number')
        batch.drop_column('einvoice_profile')
    with op.batch_alter_table('payment_details') as batch:
        batch.drop_column('leitweg_id')
        batch.drop_column('einvoice_profile')

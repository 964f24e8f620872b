"""billing run state: heartbeat, owner, aborted/resumed, progress and gross

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = ("gross", "customers_done", "customers", "resumed_by", "aborted_at", "heartbeat_at",
           "owner", "started_by")


def upgrade():
    # batch: SQLite (make run) rebuilds the table; on PostgreSQL these are plain ALTERs.
    with op.batch_alter_table('billing_runs') as batch:
        batch.add_column(sa.Column('started_by', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('owner', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('aborted_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('resumed_by', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('customers', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('customers_done', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('gross', sa.Numeric(precision=14, scale=2), server_default='0',
                                   nullable=False))
    # Runs from before: their gross is the sum of their invoices (works on both databases).
    op.execute("UPDATE billing_runs SET gross = (SELECT COALESCE(SUM(invoices.gross), 0) "
               "FROM invoices WHERE invoices.run_id = billing_runs.id)")


def downgrade():
    with op.batch_alter_table('billing_runs') as batch:
        for name in COLUMNS:
            batch.drop_column(name)

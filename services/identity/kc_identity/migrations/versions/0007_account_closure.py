"""account closure: when the customer asked to close, when their data was erased

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 12:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('customers', sa.Column('closure_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('customers', sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('erased_at')
        batch.drop_column('closure_requested_at')

"""outbox claim lease (the relay publishes with no transaction open)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:30:00
"""
from kc_common.migrations import add_outbox_lease, drop_outbox_lease

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    add_outbox_lease()


def downgrade():
    drop_outbox_lease()

"""DS-GVO data exports: requests and the parts the services sent

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 12:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "data_exports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("document_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_data_exports_customer_id", "data_exports", ["customer_id"])
    op.create_table(
        "data_export_parts",
        sa.Column("export_id", sa.String(36), sa.ForeignKey("data_exports.id"), primary_key=True),
        sa.Column("service", sa.String(20), primary_key=True),
        sa.Column("part", sa.JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("data_export_parts")
    op.drop_index("ix_data_exports_customer_id", table_name="data_exports")
    op.drop_table("data_exports")

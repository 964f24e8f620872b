"""catalog's tables. Only catalog reads or writes them."""
from sqlalchemy import (JSON, BigInteger, Column, Date, DateTime, ForeignKey, Index, Integer,
                        MetaData, Numeric, String, Table, UniqueConstraint, text)

from kc_common.db import add_messaging_tables

metadata = MetaData()

products = Table(
    "products", metadata,
    Column("id", String(50), primary_key=True),          # e.g. "domain-de", "hosting-business"
    Column("kind", String(20), nullable=False),          # hosting | domain | server | addon
    Column("name", String(200), nullable=False),
    Column("tld", String(63), nullable=True, unique=True),
    Column("price_net", Numeric(12, 2), nullable=False),  # EUR per month (domains: per year)
    Column("vat_rate", Numeric(5, 2), nullable=False),
    Column("periods", JSON, nullable=False),             # allowed payment periods in months
)

orders = Table(
    "orders", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("customer_id", "idempotency_key", name="uq_orders_idempotency"),
)

contracts = Table(
    "contracts", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=False, index=True),
    Column("product_id", String(50), ForeignKey("products.id"), nullable=False),
    Column("domain", String(253), nullable=True),
    Column("period_months", Integer, nullable=False),
    Column("price_net", Numeric(12, 2), nullable=False),  # per period, fixed at order time
    Column("vat_rate", Numeric(5, 2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("next_invoice_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    # One live contract per domain: a concurrent second order of the same domain fails here.
    Index("uq_contracts_live_domain", "domain", unique=True,
          postgresql_where=text("domain IS NOT NULL AND status <> 'terminated'"),
          sqlite_where=text("domain IS NOT NULL AND status <> 'terminated'")),
)

add_messaging_tables(metadata)

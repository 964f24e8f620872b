"""catalog's tables. Only catalog reads or writes them."""
from sqlalchemy import (
                        JSON,
                        BigInteger,
                        Boolean,
                        Column,
                        Date,
                        DateTime,
                        ForeignKey,
                        Index,
                        Integer,
                        MetaData,
                        Numeric,
                        PrimaryKeyConstraint,
                        String,
                        Table,
                        UniqueConstraint,
                        text,
)

from kc_common.db import add_messaging_tables

metadata = MetaData()

products = Table(
    "products", metadata,
    Column("id", String(50), primary_key=True),          # e.g. "domain-de", "hosting-business"
    # hosting | domain | server | addon | option (a server option, booked with a server only)
    Column("kind", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("tld", String(63), nullable=True, unique=True),
    Column("price_net", Numeric(12, 2), nullable=False),  # EUR per month (domains: per year)
    Column("vat_rate", Numeric(5, 2), nullable=False),
    Column("periods", JSON, nullable=False),             # allowed payment periods in months
    Column("description", String(500), nullable=False, server_default=""),
    # Tariff family (e.g. "businesshosting") and size within it: a tariff change moves
    # inside one family; a higher rank is an upgrade.
    Column("family", String(50), nullable=True),
    Column("rank", Integer, nullable=True),
    # Product facts: service_level, cpu_cores, ram_gb, disk_gb, disk_type, traffic_gb,
    # ip_count, access (panel), connect (Domainaufschaltung), applies_to (options) ...
    Column("attributes", JSON, nullable=False, server_default="{}"),
    Column("notice_days", Integer, nullable=False, server_default="30"),
    Column("active", Boolean, nullable=False, server_default=text("true")),  # orderable
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

# Every price a product ever had (staff changes); contracts keep the price they were booked at.
product_prices = Table(
    "product_prices", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("product_id", String(50), ForeignKey("products.id"), nullable=False, index=True),
    Column("price_net", Numeric(12, 2), nullable=False),
    Column("vat_rate", Numeric(5, 2), nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(100), nullable=True),
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
    # Registered or connected domain (kind domain) only: one live contract per domain.
    Column("domain", String(253), nullable=True),
    Column("period_months", Integer, nullable=False),
    Column("price_net", Numeric(12, 2), nullable=False),  # per period, fixed at order time
    Column("vat_rate", Numeric(5, 2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("next_invoice_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("kind", String(20), nullable=False, server_default="domain"),
    # Hosting: its main domain; server: the server name; add-on: what it is for.
    Column("label", String(253), nullable=True),
    Column("description", String(500), nullable=False, server_default=""),
    Column("options", JSON, nullable=False, server_default="[]"),  # server options as booked
    Column("notice_days", Integer, nullable=False, server_default="30"),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("end_date", Date, nullable=True),              # last day of the term once cancelled
    Column("terminated_at", DateTime(timezone=True), nullable=True),
    # A downgrade waits for the end of the period.
    Column("pending_product_id", String(50),
           ForeignKey("products.id", name="fk_contracts_pending_product"), nullable=True),
    Column("pending_price_net", Numeric(12, 2), nullable=True),
    Column("pending_effective_date", Date, nullable=True),
    # One live contract per domain: a concurrent second order of the same domain fails here.
    Index("uq_contracts_live_domain", "domain", unique=True,
          postgresql_where=text("domain IS NOT NULL AND status <> 'terminated'"),
          sqlite_where=text("domain IS NOT NULL AND status <> 'terminated'")),
    # Server names identify servers (e.g. in the traffic feed): unique among live servers.
    Index("uq_contracts_live_server_name", "label", unique=True,
          postgresql_where=text("kind = 'server' AND status <> 'terminated'"),
          sqlite_where=text("kind = 'server' AND status <> 'terminated'")),
)

# Addresses given to servers and "eigene IP-Adressen" add-ons; the primary key makes
# an address belong to one contract only.
ip_addresses = Table(
    "ip_addresses", metadata,
    Column("address", String(45), primary_key=True),
    Column("contract_id", BigInteger, ForeignKey("contracts.id"), nullable=False, index=True),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
)

# Single-use admin-panel login links (the signed token carries the jti).
login_tokens = Table(
    "login_tokens", metadata,
    Column("jti", String(36), primary_key=True),
    Column("contract_id", BigInteger, ForeignKey("contracts.id"), nullable=False, index=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("panel", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("client_ip", String(45), nullable=True),
)

# Traffic per server and day as the infrastructure reports it (a report replaces the day).
server_traffic = Table(
    "server_traffic", metadata,
    Column("contract_id", BigInteger, ForeignKey("contracts.id"), nullable=False),
    Column("day", Date, nullable=False),
    Column("gb", Numeric(14, 3), nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("contract_id", "day", name="pk_server_traffic"),
)

add_messaging_tables(metadata)

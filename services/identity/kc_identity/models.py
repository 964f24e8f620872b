"""identity's tables. Only identity reads or writes them."""
from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, ForeignKey, Integer,
                        MetaData, String, Table, true)

from kc_common.db import add_messaging_tables

metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # the Kundennummer
    Column("email", String(254), nullable=False, unique=True),
    Column("company", String(200), nullable=False, server_default=""),
    Column("last_name", String(100), nullable=False),
    Column("first_name", String(100), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
)

sessions = Table(
    "sessions", metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False, index=True),
    Column("client_ip", String(45), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

# The back office (staff realm): separate accounts, roles and sessions.
staff = Table(
    "staff", metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("roles", JSON, nullable=False),               # e.g. ["support"], ["billing"], ["admin"]
    Column("password_hash", String(255), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

staff_sessions = Table(
    "staff_sessions", metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("staff_id", String(36), ForeignKey("staff.id"), nullable=False, index=True),
    Column("client_ip", String(45), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

# Monotonic counters (customer numbers): one row per series, taken under a row lock.
counters = Table(
    "counters", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

add_messaging_tables(metadata)

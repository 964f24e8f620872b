"""billing's tables. Only billing reads or writes them. Bookings are never updated."""
from sqlalchemy import (BigInteger, Column, Date, DateTime, ForeignKey, Integer, MetaData,
                        Numeric, String, Table, Text)

from kc_common.db import add_messaging_tables

metadata = MetaData()

_ID = BigInteger().with_variant(Integer, "sqlite")

invoices = Table(
    "invoices", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("number", BigInteger, nullable=False, unique=True),   # Rnr: dense, never reused
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("net", Numeric(12, 2), nullable=False),
    Column("vat", Numeric(12, 2), nullable=False),
    Column("gross", Numeric(12, 2), nullable=False),
)

invoice_lines = Table(
    "invoice_lines", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("contract_id", BigInteger, nullable=True),
    Column("period_start", Date, nullable=True),
    Column("period_end", Date, nullable=True),
    Column("net", Numeric(12, 2), nullable=False),
    Column("vat_rate", Numeric(5, 2), nullable=False),
)

# The ledger (Kundenkonto): the balance is the sum of these; negative = open amount.
bookings = Table(
    "bookings", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Column("type", String(20), nullable=False),            # RE, ZAHLUNG, GUTSCHRIFT, KONTOAUSGLEICH, ...
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=True),
    Column("text", Text, nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("payment_method", String(2), nullable=True),    # U = Überweisung, K = Kreditkarte, ...
)

counters = Table(
    "counters", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

add_messaging_tables(metadata)

"""billing's tables. Only billing reads or writes them.

The ledger (``bookings``) is append-only: a correction is a new booking. What an
invoice still owes is derived from the ledger (payments settle the oldest debit
first), never stored and edited.
"""
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
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
)

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
    # What the law asks for, frozen at issue time (documents renders from the event alone).
    Column("kind", String(20), nullable=False, server_default="invoice"),  # invoice / credit_note
    Column("due_date", Date, nullable=True),
    Column("currency", String(3), nullable=False, server_default="EUR"),
    Column("payment_method", String(20), nullable=True),      # transfer / card / instant / sepa
    Column("payment_reference", String(60), nullable=True),
    Column("by_post", Boolean, nullable=False, server_default="false"),
    Column("invoice_email", String(254), nullable=True),
    Column("reverse_charge", Boolean, nullable=False, server_default="false"),
    Column("seller", JSON, nullable=True),
    Column("buyer", JSON, nullable=True),
    Column("vat_breakdown", JSON, nullable=True),
    Column("run_id", BigInteger, nullable=True),
    # e-invoice profile of the buyer at issue time (en16931 / xrechnung); a credit note names
    # the invoice it corrects (EN 16931 BT-25).
    Column("einvoice_profile", String(20), nullable=False, server_default="en16931"),
    Column("preceding_number", BigInteger, nullable=True),
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
    Column("quantity", Integer, nullable=False, server_default="1"),
    Column("unit_net", Numeric(12, 2), nullable=True),
    Column("vat", Numeric(12, 2), nullable=True),   # informational; the invoice's VAT is per rate
)

# The ledger (Kundenkonto): the balance is the sum of these; negative = open amount.
bookings = Table(
    "bookings", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Column("type", String(20), nullable=False),            # RE, GU, ZAHLUNG, KONTOAUSGLEICH, ...
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=True),
    Column("text", Text, nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("payment_method", String(2), nullable=True),    # U = Überweisung, K = Kreditkarte, ...
    # A payment is booked at most once; a bank statement line at most once.
    Column("payment_id", String(36), ForeignKey("payments.id"), nullable=True, unique=True),
    Column("external_ref", String(100), nullable=True, unique=True),
    # A payment whose remittance named an invoice settles that invoice first (then oldest first).
    Column("applies_to_invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=True),
    # A return debit (Rücklastschrift) cancels the payment booking it reverses; at most once.
    Column("reverses_booking_id", BigInteger, nullable=True, unique=True),
)

counters = Table(
    "counters", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Replica of identity's customer_updated (the buyer address at issue time) and the
# per-customer lock row of the billing run.
customers = Table(
    "customers", metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("company", String(200), nullable=True),
    Column("first_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("email", String(254), nullable=True),
    Column("street", String(200), nullable=True),
    Column("zip", String(20), nullable=True),
    Column("city", String(100), nullable=True),
    Column("country", String(2), nullable=True),
    Column("vat_id", String(20), nullable=True),
    Column("is_business", Boolean, nullable=False, server_default="false"),
    Column("replicated_at", DateTime(timezone=True), nullable=True),  # null: not known yet
)

payment_details = Table(
    "payment_details", metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("by_post", Boolean, nullable=False),
    Column("invoice_email", String(254), nullable=True),
    Column("with_contact_person", Boolean, nullable=False),
    Column("method", String(20), nullable=False),          # card / sepa / transfer
    Column("iban", String(34), nullable=True),
    Column("bic", String(11), nullable=True),
    Column("bank_name", String(200), nullable=True),
    Column("account_holder", String(200), nullable=True),
    Column("mandate_reference", String(35), nullable=True),
    Column("mandate_date", Date, nullable=True),
    # e-invoice: en16931 (ZUGFeRD/Factur-X EN 16931) or xrechnung (public bodies, with Leitweg-ID)
    Column("einvoice_profile", String(20), nullable=False, server_default="en16931"),
    Column("leitweg_id", String(46), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The schedule: what billing bills, and when.
billable_contracts = Table(
    "billable_contracts", metadata,
    Column("contract_id", BigInteger, primary_key=True, autoincrement=False),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("product_id", String(50), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("domain", String(253), nullable=True),
    Column("period_months", Integer, nullable=False),
    Column("price_net", Numeric(12, 2), nullable=False),
    Column("vat_rate", Numeric(5, 2), nullable=False),
    Column("next_invoice_date", Date, nullable=True, index=True),   # null: nothing more to bill
    Column("end_date", Date, nullable=True),
    Column("status", String(20), nullable=False),                   # active / cancelled / terminated
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Proof that a contract period was billed: never twice (unique), never skipped (dates advance
# in the same transaction).
billed_periods = Table(
    "billed_periods", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("contract_id", BigInteger, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=False),
    UniqueConstraint("contract_id", "period_start", name="uq_billed_period"),
)

# One row per billing run. Its state is derived (see ``runs.state``): finished (finished_at),
# aborted (aborted_at, or no heartbeat for RUN_STALE_AFTER s, or its process is gone), else
# running. The counts are the progress at the last heartbeat, final once finished.
billing_runs = Table(
    "billing_runs", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("as_of", Date, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("invoices", Integer, nullable=False, server_default="0"),
    Column("contracts", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    Column("errors", Integer, nullable=False, server_default="0"),
    Column("started_by", String(100), nullable=True),       # staff:<id>, timer, cli
    Column("owner", String(200), nullable=True),            # host:pid:token of the process
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("aborted_at", DateTime(timezone=True), nullable=True),
    Column("resumed_by", BigInteger, nullable=True),        # the run that completed its work
    Column("customers", Integer, nullable=False, server_default="0"),
    Column("customers_done", Integer, nullable=False, server_default="0"),
    Column("gross", Numeric(14, 2), nullable=False, server_default="0"),
)

payments = Table(
    "payments", metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("method", String(20), nullable=False),           # card / instant / transfer / sepa
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),           # created / pending / succeeded / failed
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("psp_payment_id", String(64), nullable=True, unique=True),
    Column("redirect_url", Text, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("customer_id", "idempotency_key", name="uq_payment_idempotency"),
)

dunning_notices = Table(
    "dunning_notices", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=False),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("level", Integer, nullable=False),
    Column("open_amount", Numeric(12, 2), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("invoice_id", "level", name="uq_dunning_level"),
)

# Klärfälle: credit transactions of the seller's own account that could not be matched to a
# customer. Never dropped: staff assign them to a customer (booked then, once).
bank_clarifications = Table(
    "bank_clarifications", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("transaction_id", String(100), nullable=False, unique=True),
    Column("account", String(34), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("value_date", Date, nullable=True),
    Column("reference", Text, nullable=False),
    Column("payer", String(140), nullable=True),
    Column("payer_iban", String(34), nullable=True),
    Column("reason", Text, nullable=False),
    Column("status", String(20), nullable=False),          # open / assigned
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("customer_id", BigInteger, nullable=True),
    Column("payment_id", String(36), nullable=True),
    Column("assigned_by", String(100), nullable=True),
    Column("assigned_at", DateTime(timezone=True), nullable=True),
)
Index("ix_bank_clarifications_status", bank_clarifications.c.status, bank_clarifications.c.id)

# SEPA direct debit: one collection per due date (idempotent), one debit per invoice (never
# collected twice); the pain.008 file is kept as written.
sepa_collections = Table(
    "sepa_collections", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("due_date", Date, nullable=False, unique=True),
    Column("message_id", String(35), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(100), nullable=True),
    Column("count", Integer, nullable=False),
    Column("total", Numeric(14, 2), nullable=False),
    Column("pain008", Text, nullable=True),                  # null: nothing was due
)

sepa_debits = Table(
    "sepa_debits", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("collection_id", BigInteger, ForeignKey("sepa_collections.id"), nullable=False, index=True),
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), nullable=False, unique=True),
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("end_to_end_id", String(35), nullable=False, unique=True),
    Column("mandate_reference", String(35), nullable=False),
    Column("mandate_date", Date, nullable=False),
    Column("iban", String(34), nullable=False),
    Column("sequence_type", String(4), nullable=False),      # FRST / RCUR
    Column("payment_id", String(36), ForeignKey("payments.id"), nullable=False),
    Column("status", String(20), nullable=False),            # collected / returned
    Column("return_reason", String(4), nullable=True),
    Column("returned_at", DateTime(timezone=True), nullable=True),
)

add_messaging_tables(metadata)

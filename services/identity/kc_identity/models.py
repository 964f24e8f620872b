"""identity's tables. Only identity reads or writes them."""
from sqlalchemy import (
                        JSON,
                        BigInteger,
                        Boolean,
                        Column,
                        DateTime,
                        ForeignKey,
                        Index,
                        Integer,
                        MetaData,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
                        false,
                        true,
)

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
    # Adressdaten (validated in kc_identity.address; phone numbers in E.164)
    Column("street", String(200), nullable=True),
    Column("zip", String(20), nullable=True),
    Column("city", String(100), nullable=True),
    Column("country", String(2), nullable=False, server_default="DE"),  # ISO 3166 alpha-2
    Column("phone", String(20), nullable=True),
    Column("fax", String(20), nullable=True),
    Column("mobile", String(20), nullable=True),
    Column("vat_id", String(20), nullable=True),
    # Telephone password: Fernet token (authenticated encryption), never the plain text.
    Column("phone_password_enc", Text, nullable=True),
    Column("phone_password_set_at", DateTime(timezone=True), nullable=True),
    Column("password_changed_at", DateTime(timezone=True), nullable=True),
    # IP whitelist: normalised networks ("192.0.2.7/32", "2001:db8::/48"); empty = any address.
    Column("ip_whitelist", JSON, nullable=False, server_default="[]"),
    # Optional two-factor login (TOTP, RFC 6238): secrets encrypted like the telephone password.
    Column("totp_secret_enc", Text, nullable=True),       # active secret (2FA on when set)
    Column("totp_pending_enc", Text, nullable=True),      # set up but not yet confirmed with a code
    Column("totp_enabled_at", DateTime(timezone=True), nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),  # last accepted time step: no code replay
    # Double opt-in: NULL until the address has confirmed a link (sign-up); may not order or pay.
    Column("email_verified_at", DateTime(timezone=True), nullable=True),
    # The Unternehmer-AGB version accepted at sign-up, and when (NULL for customers created otherwise).
    Column("terms_version", String(20), nullable=True),
    Column("terms_accepted_at", DateTime(timezone=True), nullable=True),
    # Account closure (Konto schließen): asked for at; erased (pseudonymised) at, once the last
    # contract has ended and the balance is settled.
    Column("closure_requested_at", DateTime(timezone=True), nullable=True),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)

# Single-use, expiring links (only the SHA-256 of the token is stored): password reset, the
# set-password link of a customer created by staff, e-mail verification and e-mail change.
account_tokens = Table(
    "account_tokens", metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("purpose", String(20), nullable=False),   # password_reset / set_password / verify_email / change_email
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False, index=True),
    Column("email", String(254), nullable=False),    # the address the link was sent to
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

# Public requests that send mail (sign-up, password reset), throttled per subject and address.
account_requests = Table(
    "account_requests", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),       # signup / password_reset
    Column("subject", String(254), nullable=False),   # the e-mail / the account asked for
    Column("client_ip", String(45), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_account_requests_subject_at", "kind", "subject", "at"),
    Index("ix_account_requests_ip_at", "kind", "client_ip", "at"),
)

# One-time recovery codes of the two-factor login (SHA-256 of high-entropy random codes).
recovery_codes = Table(
    "recovery_codes", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

# Every login attempt (customer and staff): throttling and "recent logins".
login_events = Table(
    "login_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("realm", String(10), nullable=False),            # customer / staff
    Column("account", String(254), nullable=False),         # customer id, or the login tried when unknown
    Column("customer_id", BigInteger, nullable=True),
    Column("client_ip", String(45), nullable=True),
    Column("success", Boolean, nullable=False),
    Column("reason", String(30), nullable=False),           # ok / bad_credentials / ip_not_allowed / reauth_failed
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_login_events_account_at", "realm", "account", "at"),
    Index("ix_login_events_ip_at", "client_ip", "at"),
)

# Staff checks of a telephone password (attempts limited per customer).
phone_password_checks = Table(
    "phone_password_checks", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("staff_id", String(36), nullable=True),
    Column("success", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_phone_password_checks_customer_at", "customer_id", "at"),
)

# Ansprechpartner: persons who may speak for the customer.
contacts = Table(
    "contacts", metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=True),
    Column("phone", String(20), nullable=True),
    Column("role", String(100), nullable=False, server_default=""),
    Column("relation", String(10), nullable=False, server_default="external"),  # internal / external
    Column("may_support", Boolean, nullable=False, server_default=false()),
    Column("may_billing", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Mitteilungen: one row per customer and optional topic the customer has set.
notification_preferences = Table(
    "notification_preferences", metadata,
    Column("customer_id", BigInteger, ForeignKey("customers.id"), primary_key=True),
    Column("topic", String(30), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Datenschutz: every signature of a version of the AV agreement (history kept).
av_signatures = Table(
    "av_signatures", metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("text_sha256", String(64), nullable=False),
    Column("signer_name", String(200), nullable=False),
    Column("signer_position", String(100), nullable=False),
    Column("client_ip", String(45), nullable=True),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("customer_id", "version", name="uq_av_signatures_customer_version"),
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

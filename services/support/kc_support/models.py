"""support's tables. Only support reads or writes them.

Attachment bytes are not here: ``attachments`` holds their metadata and sha256;
the bytes live in the attachment store (``kc_support.storage``).
"""
from sqlalchemy import (
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
)

from kc_common.db import add_messaging_tables

metadata = MetaData()

ID = BigInteger().with_variant(Integer, "sqlite")

requests = Table(
    "support_requests", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("number", String(20), nullable=True, unique=True),  # "SR-000042", set in the same transaction
    Column("customer_id", Integer, nullable=False, index=True),
    Column("author_name", String(200), nullable=False),          # "Ihr Name", as identity confirmed it
    Column("author_kind", String(20), nullable=False),           # customer / contact
    Column("contact_id", String(64), nullable=True),
    Column("author_email", String(320), nullable=True),
    Column("subject", String(200), nullable=False),
    Column("category", String(20), nullable=False, index=True),
    Column("state", String(20), nullable=False, index=True),    # open / answered / closed
    Column("assignee_staff_id", String(64), nullable=True, index=True),
    Column("reply_token", String(64), nullable=False, unique=True),  # secret for e-mail replies
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

messages = Table(
    "support_messages", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("request_id", ID, ForeignKey("support_requests.id"), nullable=False),
    # customer (the customer or a contact writes), staff (reply the customer sees),
    # note (internal, never shown to the customer), call (a recorded phone call, internal)
    Column("kind", String(20), nullable=False),
    Column("author_name", String(200), nullable=False),
    Column("staff_id", String(64), nullable=True),
    Column("via", String(20), nullable=False),                   # web / email / phone
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_support_messages_request", "request_id", "id"),
)

attachments = Table(
    "support_attachments", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("request_id", ID, ForeignKey("support_requests.id"), nullable=False, index=True),
    Column("message_id", ID, ForeignKey("support_messages.id"), nullable=False, index=True),
    Column("filename", String(255), nullable=False),             # sanitised
    Column("content_type", String(100), nullable=False),         # detected from the content
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),                # also the key in the store
    Column("created_at", DateTime(timezone=True), nullable=False),
)

calls = Table(
    "support_calls", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("request_id", ID, ForeignKey("support_requests.id"), nullable=False, index=True),
    Column("staff_id", String(64), nullable=False),
    Column("caller_name", String(200), nullable=False),
    Column("name_authorised", Boolean, nullable=False),
    Column("password_verified", Boolean, nullable=False),
    Column("verified", Boolean, nullable=False),                 # both of the above
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

add_messaging_tables(metadata)

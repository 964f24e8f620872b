"""documents's tables. Only documents reads or writes them.

The files themselves live in the storage (:mod:`kc_documents.storage`); the
tables hold what they are, whose they are, where they are and their sha256.
"""
from sqlalchemy import (
                        JSON,
                        Column,
                        Date,
                        DateTime,
                        ForeignKey,
                        Integer,
                        MetaData,
                        String,
                        Table,
                        UniqueConstraint,
)

from kc_common.db import add_messaging_tables

metadata = MetaData()

# A customer's own generated documents (invoices, the signed AV agreement).
documents = Table(
    "documents", metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", Integer, nullable=False, index=True),
    Column("kind", String(20), nullable=False),            # invoice / av_agreement
    Column("ref", String(100), nullable=False),            # invoice number / agreement id
    Column("title", String(200), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", String(300), nullable=False),
    Column("document_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "ref", name="uq_documents_kind_ref"),  # one document per invoice
)

# The document library ("Meine Dokumente"): one row per entry of the guide's table.
library_documents = Table(
    "library_documents", metadata,
    Column("slug", String(50), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("description", String(300), nullable=False),
    Column("source", String(20), nullable=False),   # versions / catalog (live price list) / link
    Column("action", String(30), nullable=False),   # Download / Zur Übersicht / Zum Onlinehandbuch
    Column("position", Integer, nullable=False),
)

# Published versions of a library document; the newest is current, older ones stay retrievable.
library_versions = Table(
    "library_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("slug", String(50), ForeignKey("library_documents.slug"), nullable=False, index=True),
    Column("version", String(20), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("note", String(300), nullable=True),
    Column("template", String(100), nullable=True),     # built-in template, rendered on first download
    Column("filename", String(200), nullable=False),
    Column("storage_key", String(300), nullable=True),  # null until a built-in one is rendered
    Column("sha256", String(64), nullable=True),
    Column("size", Integer, nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("published_by", String(100), nullable=True),
    UniqueConstraint("slug", "version", name="uq_library_versions_slug_version"),
)

# DS-GVO data exports (Art. 15/20): requested by the customer, one part per service arrives
# as an event; when all are in, the ZIP is stored as a document (kind ``data_export``).
data_exports = Table(
    "data_exports", metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", Integer, nullable=False, index=True),
    Column("state", String(20), nullable=False),          # pending / ready
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("ready_at", DateTime(timezone=True), nullable=True),
    Column("document_id", String(36), nullable=True),
)

data_export_parts = Table(
    "data_export_parts", metadata,
    Column("export_id", String(36), ForeignKey("data_exports.id"), primary_key=True),
    Column("service", String(20), primary_key=True),
    Column("part", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

add_messaging_tables(metadata)

"""dns's tables. Only dns reads or writes them."""
from sqlalchemy import (
                        BigInteger,
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

_ID = BigInteger().with_variant(Integer, "sqlite")

zones = Table(
    "zones", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(253), nullable=False, unique=True),   # A-label, no trailing dot
    Column("customer_id", BigInteger, nullable=False, index=True),
    Column("contract_id", BigInteger, nullable=True),
    Column("serial", BigInteger, nullable=False),                # YYYYMMDDnn
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

records = Table(
    "records", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("zone_id", BigInteger, ForeignKey("zones.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(253), nullable=False),   # relative to the zone, "@" for the apex
    Column("type", String(10), nullable=False),
    Column("ttl", Integer, nullable=False),
    Column("content", Text, nullable=False),       # canonical rdata, absolute names
    # A record set (zone, name, type) is what every change reads and writes.
    Index("ix_records_zone_name_type", "zone_id", "name", "type"),
)

add_messaging_tables(metadata)

"""Many rows into one table in one transaction, as fast as the database takes them: ``COPY``
on PostgreSQL (psycopg2 not made green), multi-row INSERTs elsewhere (the billing run's
chunks)."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, Boolean, Table
from sqlalchemy.orm import Session


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in the session's transaction.

    On PostgreSQL (psycopg2, not made green) they are streamed with one ``COPY … FROM STDIN``
    (text format, no statement to parse per row, the fastest way in); elsewhere, and where
    psycopg2 waits cooperatively (a nameko service: it cannot COPY then), one executemany
    (SQLAlchemy sends multi-row INSERTs). Columns left out take their defaults. For many rows of one
    transaction (the billing run's chunks); returns nothing (no generated ids).
    """
    prepare_bulk_insert(session, table, rows)()


def prepare_bulk_insert(session: Session, table: Table,
                        rows: Sequence[dict[str, Any]]) -> Callable[[], Any]:
    """:func:`bulk_insert` in two steps: the rows are encoded now, the returned function sends
    them (so that the encoding need not happen while a contended lock is held)."""
    if not rows:
        return lambda: None
    if session.bind.dialect.driver != "psycopg2" or _green_psycopg2():  # type: ignore[union-attr]
        return lambda: session.execute(table.insert(), rows)
    columns = list(rows[0])
    encoders = [_copy_encoder(table.c[name].type) for name in columns]
    text = "".join(["\t".join([encode(row[name]) for name, encode in zip(columns, encoders)]) + "\n"
                    for row in rows])
    quote = session.bind.dialect.identifier_preparer  # type: ignore[union-attr]  # a bound session
    sql = (f"COPY {quote.format_table(table)} ({', '.join(quote.quote(c) for c in columns)}) "
           "FROM STDIN")

    def send() -> None:
        raw: Any = session.connection().connection.dbapi_connection  # the transaction's connection
        with raw.cursor() as cursor:
            cursor.copy_expert(sql, io.StringIO(text))
    return send


def _green_psycopg2() -> bool:
    """psycopg2 made cooperative (eventlet's monkey patch in a nameko service) cannot COPY."""
    from psycopg2.extensions import get_wait_callback
    return get_wait_callback() is not None


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_encoder(type_: Any) -> Callable[[Any], str]:
    """The function writing one value of a column of ``type_`` in COPY's text format (NULL is
    ``\\N``; backslash, tab and newlines escaped; JSON None is the JSON null, as SQLAlchemy
    stores it). A JSON value seen before in the same batch (one dict shared by every row) is
    encoded once."""
    if isinstance(type_, JSON):
        seen: dict[int, tuple[Any, str]] = {}

        def encode_json(value: Any) -> str:
            key = id(value)
            if key not in seen:
                seen[key] = (value, json.dumps(value).translate(_COPY_ESCAPES))  # keeps it alive
            return seen[key][1]
        return encode_json
    if isinstance(type_, Boolean):
        return lambda value: "\\N" if value is None else "t" if value else "f"
    return _copy_text


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)

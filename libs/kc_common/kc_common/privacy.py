"""DS-GVO export parts (Art. 15/20): what one service holds about one customer, as JSON.

Each service answers documents' ``data_export_requested`` with its own part,
read from its own tables only (:func:`customer_part`): every table with the customer's
key, plus one level of child tables reached by a foreign key (support messages of the
customer's requests, DNS records of their zones…). Secrets (hashes, tokens, encrypted
values, storage keys) never leave the service. Bounded: at most ``max_rows`` rows per
table (``truncated`` says when more exist) and ``MAX_PART_BYTES`` of JSON per part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import MetaData, Row, select
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, json_default, to_json_safe

SECRET_COLUMNS = re.compile(r"(_hash$|hash_|secret|token|_enc$|^password$|storage_key|salt|nonce|totp)", re.I)
SKIP_TABLES = {"outbox", "inbox", "counters"}
MAX_ROWS = 1000
MAX_PART_BYTES = 4 * 1024 * 1024


def _dump(rows: Sequence[Row[Any]]) -> list[Any]:
    return [to_json_safe(dict(row._mapping)) for row in rows]


def customer_part(session: Session, metadata: MetaData, customer_id: int, *,
                  key_columns: Mapping[str, str] | None = None, exclude: Collection[str] = (),
                  max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """``{table: {"rows": [...], "truncated": bool}}`` for one customer, children included."""
    key_columns = dict(key_columns or {})
    part, ids = {}, {}
    skip = SKIP_TABLES | set(exclude)
    tables = [t for t in metadata.sorted_tables if t.name not in skip]
    for table in tables:
        column = key_columns.get(table.name, "customer_id")
        if column not in table.c:
            continue
        cols = [c for c in table.c if not SECRET_COLUMNS.search(c.name)]
        rows = session.execute(select(*cols).where(table.c[column] == customer_id)
                               .order_by(*table.primary_key.columns).limit(max_rows + 1)).all()
        part[table.name] = {"rows": _dump(rows[:max_rows]), "truncated": len(rows) > max_rows}
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].name in (c.name for c in cols):
            ids[table.name] = [getattr(r, pk[0].name) for r in rows[:max_rows]]
    for table in tables:
        if table.name in part:
            continue
        for fk in table.foreign_keys:
            parent = fk.column.table.name
            if parent in ids and fk.column.primary_key:
                cols = [c for c in table.c if not SECRET_COLUMNS.search(c.name)]
                rows = session.execute(
                    select(*cols).where(fk.parent.in_(ids[parent]))
                    .order_by(*table.primary_key.columns).limit(max_rows + 1)).all() if ids[parent] else []
                part[table.name] = {"rows": _dump(rows[:max_rows]), "truncated": len(rows) > max_rows}
                break
    return bounded(part)


def bounded(part: dict[str, Any]) -> dict[str, Any]:
    """Drop the rows of the largest tables (keeping a note) until the part fits ``MAX_PART_BYTES``."""
    while len(json.dumps(part, default=json_default)) > MAX_PART_BYTES:
        name = max((n for n in part if part[n].get("rows")),
                   key=lambda n: len(json.dumps(part[n], default=json_default)), default=None)
        if name is None:
            break
        part[name] = {"rows": [], "truncated": True, "omitted": len(part[name]["rows"])}
    return part


def answer_export_request(uow: UnitOfWork, metadata: MetaData, service: str, data: dict[str, Any],
                          **kwargs: Any) -> dict[str, Any]:
    """The standard answer to ``data_export_requested``: emit ``data_export_part``."""
    part = customer_part(uow.session, metadata, data["customer_id"], **kwargs)
    uow.emit("data_export_part", {"export_id": data["export_id"], "customer_id": data["customer_id"],
                                  "service": service, "part": part})
    return part

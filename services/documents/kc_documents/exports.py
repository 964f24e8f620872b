"""DS-GVO data exports (Art. 15/20), assembled by documents.

The customer requests an export (``request_export``): one row in ``data_exports`` and the
event ``data_export_requested``. Every service (documents included) answers with its part
(``data_export_part``, or for documents itself directly); ``record_part`` keeps one part per
(export, service), duplicates ignored. When all of ``SERVICES`` are in, the handler builds
the ZIP outside any transaction (``build_zip``: one JSON per service plus the customer's
PDFs) and ``finish`` stores it as a document of kind ``data_export`` (in Meine Dokumente)
and emits ``data_export_ready`` (identity mails the customer). Idempotent per export id:
a rebuild after a crash writes the same storage key, and only the first ``finish`` wins.
"""
import io
import json
import uuid
import zipfile

from sqlalchemy import select, update

from kc_common.db import as_utc, dialect_insert, json_default, utcnow
from kc_common.errors import NotFound
from kc_documents.formatting import as_date
from kc_documents.models import data_export_parts, data_exports, documents
from kc_documents.storage import checked_get, sha256

SERVICES = ("identity", "catalog", "billing", "dns", "documents", "support")
ZIP = "application/zip"
MAX_PDFS = 500
PENDING, READY = "pending", "ready"


def request_export(uow, customer_id):
    """A new export, or the one still pending (no second export while one is assembled)."""
    row = uow.session.execute(select(data_exports).where(
        data_exports.c.customer_id == customer_id, data_exports.c.state == PENDING)).first()
    if row is not None:
        return view(uow.session, row)
    export_id = str(uuid.uuid4())
    now = utcnow()
    uow.session.execute(data_exports.insert().values(
        id=export_id, customer_id=customer_id, state=PENDING, requested_at=now))
    uow.emit("data_export_requested", {"export_id": export_id, "customer_id": customer_id,
                                       "requested_at": now})
    return view(uow.session, uow.session.execute(
        select(data_exports).where(data_exports.c.id == export_id)).first())


def view(session, row):
    services = sorted(session.execute(select(data_export_parts.c.service).where(
        data_export_parts.c.export_id == row.id)).scalars())
    return {"export_id": row.id, "state": row.state, "requested_at": as_utc(row.requested_at),
            "ready_at": as_utc(row.ready_at) if row.ready_at else None,
            "document_id": row.document_id,
            "download_path": f"/api/v1/me/documents/{row.document_id}" if row.document_id else None,
            "parts_received": services, "parts_expected": list(SERVICES)}


def latest(session, customer_id):
    row = session.execute(select(data_exports).where(data_exports.c.customer_id == customer_id)
                          .order_by(data_exports.c.requested_at.desc()).limit(1)).first()
    if row is None:
        raise NotFound("Es wurde noch kein Datenexport angefordert.")
    return view(session, row)


def record_part(uow, data):
    """Keep one service's part (once). Returns the export id when that export is complete."""
    export = uow.session.execute(select(data_exports).where(
        data_exports.c.id == str(data.get("export_id")))).first()
    if export is None or str(export.customer_id) != str(data.get("customer_id")) \
            or data.get("service") not in SERVICES:
        return None  # not ours / unknown: nothing to keep
    uow.session.execute(dialect_insert(uow.session)(data_export_parts).values(
        export_id=export.id, service=data["service"], part=data.get("part") or {},
        received_at=utcnow()).on_conflict_do_nothing(index_elements=["export_id", "service"]))
    return export.id


def pending_complete(session, export_id):
    """What the ZIP needs when the export is pending and complete, else None."""
    export = session.execute(select(data_exports).where(data_exports.c.id == export_id)).first()
    if export is None or export.state != PENDING:
        return None
    parts = {r.service: r.part for r in session.execute(select(data_export_parts).where(
        data_export_parts.c.export_id == export_id))}
    if set(parts) != set(SERVICES):
        return None
    pdfs = session.execute(select(documents.c.filename, documents.c.storage_key, documents.c.sha256)
                           .where(documents.c.customer_id == export.customer_id,
                                  documents.c.kind != "data_export")
                           .order_by(documents.c.created_at).limit(MAX_PDFS)).all()
    return {"export_id": export_id, "customer_id": export.customer_id,
            "requested_at": as_utc(export.requested_at), "parts": parts,
            "pdfs": [tuple(p) for p in pdfs]}


def build_zip(prepared, storage):
    """The archive (no transaction open): ``<service>.json`` per service, ``dokumente/*.pdf``."""
    buf = io.BytesIO()
    stamp = prepared["requested_at"].timetuple()[:6]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        def add(name, data):
            zf.writestr(zipfile.ZipInfo(name, date_time=stamp), data)
        add("README.txt", "Datenexport nach Art. 15 und 20 DS-GVO\n"
            f"Kundennummer: {prepared['customer_id']}\n"
            "Je Dienst eine JSON-Datei mit allen dort gespeicherten Daten; im Ordner dokumente "
            "Ihre Rechnungen und Vereinbarungen als PDF.\n")
        for service in SERVICES:
            add(f"{service}.json", json.dumps(
                {"service": service, "customer_id": prepared["customer_id"],
                 "data": prepared["parts"][service]},
                default=json_default, ensure_ascii=False, indent=2, sort_keys=True))
        used = set()
        for filename, key, digest in prepared["pdfs"]:
            name = filename
            n = 1
            while name in used:
                n += 1
                name = f"{n}-{filename}"
            used.add(name)
            add(f"dokumente/{name}", checked_get(storage, key, digest))
    data = buf.getvalue()
    key = f"data_export/{prepared['customer_id']}/{prepared['export_id']}.zip"
    storage.put(key, data, ZIP)
    return {"key": key, "sha256": sha256(data), "size": len(data)}


def finish(uow, prepared, stored):
    """Record the ZIP as a document and mark the export ready (first caller only)."""
    now = utcnow()
    doc_id = str(uuid.uuid4())
    won = uow.session.execute(update(data_exports).where(
        data_exports.c.id == prepared["export_id"], data_exports.c.state == PENDING).values(
        state=READY, ready_at=now, document_id=doc_id)).rowcount
    if not won:
        return None
    day = as_date(now)
    filename = f"Datenexport_{prepared['customer_id']}_{prepared['requested_at']:%Y-%m-%d}.zip"
    uow.session.execute(documents.insert().values(
        id=doc_id, customer_id=prepared["customer_id"], kind="data_export", ref=prepared["export_id"],
        title="Datenexport (Art. 15/20 DS-GVO)", filename=filename, content_type=ZIP,
        size=stored["size"], sha256=stored["sha256"], storage_key=stored["key"],
        document_date=day, created_at=now))
    uow.emit("data_export_ready", {"export_id": prepared["export_id"],
                                   "customer_id": prepared["customer_id"], "document_id": doc_id,
                                   "filename": filename, "size": stored["size"],
                                   "requested_at": prepared["requested_at"], "ready_at": now})
    return doc_id


def forget_customer(uow, data, storage):
    """identity's ``customer_erased``: the export archives (a copy of everything) and their parts
    go; invoices and AV agreements stay for the retention period (§ 147 AO / § 257 HGB).
    Returns the storage keys to delete after commit."""
    customer_id = int(data["customer_id"])
    session = uow.session
    ids = list(session.execute(select(data_exports.c.id).where(
        data_exports.c.customer_id == customer_id)).scalars())
    keys = list(session.execute(select(documents.c.storage_key).where(
        documents.c.customer_id == customer_id, documents.c.kind == "data_export")).scalars())
    if ids:
        session.execute(data_export_parts.delete().where(data_export_parts.c.export_id.in_(ids)))
        session.execute(data_exports.delete().where(data_exports.c.id.in_(ids)))
    session.execute(documents.delete().where(documents.c.customer_id == customer_id,
                                             documents.c.kind == "data_export"))
    return keys

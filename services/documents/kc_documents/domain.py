"""documents's rules, plain functions over a SQLAlchemy session (and a storage)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from marshmallow import Schema, ValidationError
from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, as_utc, dialect_insert, utcnow
from kc_common.errors import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    ValidationFailed,
)
from kc_common.schemas import _flatten
from kc_documents import library
from kc_documents.formatting import number_de
from kc_documents.models import documents, library_documents, library_versions
from kc_documents.pool import timed_out
from kc_documents.storage import Storage, checked_get, sha256

log = logging.getLogger(__name__)

PDF = "application/pdf"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def safe_name(text: object) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "-", str(text)).strip("-")[:80] or "x"


def parse_event(schema: Schema, data: dict[str, Any] | None, event_type: str) -> dict[str, Any]:
    """Validate an event's data against the contract; a malformed or incomplete event raises
    (the handler retries and finally parks it in the dead-letter queue, where an operator sees it)."""
    try:
        return schema.load(data or {})
    except ValidationError as exc:
        fields = _flatten(exc.messages)
        log.warning("%s event incomplete or malformed, not rendered (fields: %s)", event_type,
                    ", ".join(sorted(fields)))
        raise Unprocessable(f"{event_type}: Daten unvollständig", {"fields": fields}) from None


def check_invoice_size(data: Any, max_lines: int) -> None:
    """An invoice with more lines than ``max_lines`` is not rendered: the event is parked naming
    why (checked on the raw event, before validating thousands of lines)."""
    lines = (data or {}).get("lines") if isinstance(data, dict) else None
    if isinstance(lines, list) and len(lines) > max_lines:
        number = data.get("number")
        log.warning("invoice %s has %d lines (at most %d are rendered); parked", number, len(lines),
                    max_lines)
        raise Unprocessable(
            f"Rechnung {number}: {number_de(len(lines))} Positionen – als PDF werden höchstens "
            f"{number_de(max_lines)} Positionen erzeugt.",
            {"reason": "too_many_lines", "lines": len(lines), "max_lines": max_lines})


def render_or_park(renderer: Any, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Render for an event handler. A document that did not render within the pool's time limit
    (its worker is killed) would not render the next time either: it raises Unprocessable naming
    the reason, so the event is parked in the dead-letter queue instead of occupying a worker
    for RENDER_TIMEOUT again on every retry. A crashed worker or a busy pool stays
    ServiceUnavailable (transient: retried)."""
    try:
        return renderer.run(fn, *args)
    except ServiceUnavailable as exc:
        if not timed_out(exc):
            raise
        seconds = exc.details.get("timeout")
        raise Unprocessable(f"{what}: Das PDF konnte nicht innerhalb von {number_de(seconds)} s erzeugt "
                            f"werden (zu umfangreich).",
                            {"reason": "render_timeout", "timeout": seconds}) from exc


# --- the customer's own documents ------------------------------------------------------------

def find_document(session: Session, kind: str, ref: str) -> Row[Any] | None:
    return session.execute(select(documents).where(documents.c.kind == kind,
                                                   documents.c.ref == str(ref))).first()


def store_document(uow: UnitOfWork, *, customer_id: int, kind: str, ref: str, title: str, filename: str,
                   data: bytes, document_date: dt.date, storage: Storage) -> str | None:
    """Store the bytes and record the document once per (kind, ref); emits ``document_stored``.

    Returns the document id, or None when the document existed already (duplicate event)."""
    digest = sha256(data)
    key = document_key(kind, customer_id, ref, digest)
    storage.put(key, data, PDF)
    doc_id = str(uuid.uuid4())
    inserted = uow.session.execute(dialect_insert(uow.session)(documents).values(  # type: ignore[attr-defined]  # a DML statement's CursorResult
        id=doc_id, customer_id=customer_id, kind=kind, ref=str(ref), title=title, filename=filename,
        content_type=PDF, size=len(data), sha256=digest, storage_key=key,
        document_date=document_date, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["kind", "ref"])).rowcount
    if not inserted:
        log.info("%s %s is stored already; duplicate ignored", kind, ref)
        return None
    uow.emit("document_stored", {"document_id": doc_id, "customer_id": customer_id, "kind": kind,
                                 "ref": str(ref), "filename": filename, "sha256": digest})
    return doc_id


def document_key(kind: str, customer_id: int, ref: str, digest: str) -> str:
    """Where a customer's document is stored: by kind and customer, named by its reference and
    its content (a changed PDF for the same reference never overwrites the first one)."""
    return f"{kind}/{customer_id}/{safe_name(ref)}-{digest[:16]}.pdf"


def invoice_filename(number: str, kind: str = "invoice") -> str:
    return f"{'Gutschrift' if kind == 'credit_note' else 'Rechnung'}_{safe_name(number)}.pdf"


def av_filename(agreement_id: str) -> str:
    return f"AV-Vereinbarung_{safe_name(agreement_id)}.pdf"


def _doc_dump(row: Row[Any]) -> dict[str, Any]:
    data = dict(row._mapping)
    data["created_at"] = as_utc(data["created_at"])
    data["download_path"] = f"/api/v1/me/documents/{row.id}"
    return data


def list_documents(session: Session, customer_id: int, *, page: int, per_page: int,
                   kind: str | None = None) -> dict[str, Any]:
    where = [documents.c.customer_id == customer_id]
    if kind:
        where.append(documents.c.kind == kind)
    total = session.execute(select(func.count()).select_from(documents).where(*where)).scalar_one()
    rows = session.execute(select(documents).where(*where)
                           .order_by(documents.c.document_date.desc(), documents.c.created_at.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [_doc_dump(r) for r in rows], "total": total, "page": page, "per_page": per_page}


def _file(row: Row[Any], storage: Storage) -> dict[str, Any]:
    data = checked_get(storage, row.storage_key, row.sha256)
    return {"filename": row.filename, "content_type": row.content_type,
            "content_b64": base64.b64encode(data).decode("ascii"), "sha256": row.sha256}


def document_file(session: Session, storage: Storage, document_id: str,
                  customer_id: int | None = None) -> dict[str, Any]:
    """The file of a document; with ``customer_id`` only that customer's (else 404)."""
    try:
        uuid.UUID(str(document_id))
    except ValueError:
        raise NotFound("Dokument nicht gefunden.") from None
    row = session.execute(select(documents).where(documents.c.id == str(document_id))).first()
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise NotFound("Dokument nicht gefunden.")
    return _file(row, storage)


def invoice_file(session: Session, storage: Storage, number: str, customer_id: int) -> dict[str, Any]:
    row = find_document(session, "invoice", number)
    if row is None or row.customer_id != customer_id:
        raise NotFound("Zu dieser Rechnung gibt es (noch) kein PDF.")
    return _file(row, storage)


# --- the library ---------------------------------------------------------------------------------

def ensure_library(session: Session) -> None:
    """The guide's entries and the built-in version 1 of each (idempotent)."""
    have = set(session.execute(select(library_documents.c.slug)).scalars())
    if len(have) >= len(library.ENTRIES):
        return
    for position, (slug, name, description, source, action, template) in enumerate(library.ENTRIES, 1):
        if slug in have:
            continue
        session.execute(dialect_insert(session)(library_documents).values(
            slug=slug, name=name, description=description, source=source, action=action,
            position=position).on_conflict_do_nothing(index_elements=["slug"]))
        if source == "versions":
            session.execute(dialect_insert(session)(library_versions).values(
                slug=slug, version=library.INITIAL_VERSION, valid_from=library.INITIAL_DATE,
                note="Erstfassung", template=template,
                filename=library.filename(slug, library.INITIAL_VERSION), published_at=utcnow(),
                published_by=None).on_conflict_do_nothing(index_elements=["slug", "version"]))


def _entry(session: Session, slug: str) -> Row[Any]:
    row = session.execute(select(library_documents).where(library_documents.c.slug == slug)).first()
    if row is None:
        raise NotFound("Dieses Dokument gibt es nicht.")
    return row


def _versions(session: Session, slug: str) -> Sequence[Row[Any]]:
    """Newest first: by valid_from, then publication order."""
    return session.execute(select(library_versions).where(library_versions.c.slug == slug)
                           .order_by(library_versions.c.valid_from.desc(),
                                     library_versions.c.id.desc())).all()


def _version_path(slug: str, version: str) -> str:
    return f"/api/v1/library/{slug}/versions/{version}"


def library_list(session: Session, manual_url: str, today: dt.date) -> dict[str, Any]:
    items = []
    rows = session.execute(select(library_documents).order_by(library_documents.c.position)).all()
    for row in rows:
        item = {"slug": row.slug, "name": row.name, "description": row.description,
                "action": row.action, "kind": "pdf", "version": None, "date": None,
                "download_path": f"/api/v1/library/{row.slug}", "url": None}
        if row.source == "link":
            item.update(kind="link", url=manual_url, download_path=None)
        elif row.source == "catalog":
            item.update(version=today.isoformat(), date=today)
        else:
            current = _current(session, row.slug, today)
            if current is not None:
                item.update(version=current.version, date=current.valid_from)
        items.append(item)
    return {"items": items}


def _current(session: Session, slug: str, today: dt.date) -> Row[Any] | None:
    return current_version(_versions(session, slug), today)


def current_version(versions: Sequence[Row[Any]], today: dt.date) -> Row[Any] | None:
    """The version a download gets today: the newest already valid (or, if none is yet, the
    oldest; None without versions). ``versions``: newest first (valid_from, then publication)."""
    valid = [v for v in versions if v.valid_from <= today]
    return valid[0] if valid else (versions[-1] if versions else None)


def library_versions_list(session: Session, slug: str) -> dict[str, Any]:
    entry = _entry(session, slug)
    if entry.source != "versions":
        raise NotFound("Dieses Dokument hat keine Versionen.")
    items = [{"version": v.version, "valid_from": v.valid_from, "note": v.note, "filename": v.filename,
              "sha256": v.sha256, "published_at": as_utc(v.published_at),
              "download_path": _version_path(slug, v.version)} for v in _versions(session, slug)]
    return {"slug": slug, "name": entry.name, "items": items}


def library_version_row(session: Session, slug: str, version: str,
                        today: dt.date) -> tuple[Row[Any], Row[Any] | None]:
    """(entry, version row) for a download; version None = the current one."""
    entry = _entry(session, slug)
    if entry.source == "link":
        raise Unprocessable("Dieses Dokument ist ein Link, kein Download.")
    if entry.source == "catalog":
        if version is not None:
            raise NotFound("Die Preisliste wird stets aktuell erzeugt; ältere Stände gibt es nicht.")
        return entry, None
    if version is None:
        row = _current(session, slug, today)
    else:
        row = session.execute(select(library_versions).where(
            library_versions.c.slug == slug, library_versions.c.version == version)).first()
    if row is None:
        raise NotFound("Diese Version gibt es nicht.")
    return entry, row


def version_file(row: Row[Any], data: bytes) -> dict[str, Any]:
    return {"filename": row.filename, "content_type": PDF,
            "content_b64": base64.b64encode(data).decode("ascii"), "sha256": sha256(data)}


def cached_version_bytes(session: Session, storage: Storage, row: Row[Any]) -> bytes | None:
    if row.storage_key is None:
        return None
    return checked_get(storage, row.storage_key, row.sha256)


def save_rendered_version(session: Session, storage: Storage, row: Row[Any], data: bytes) -> bytes:
    """Keep a rendered built-in version; the first writer wins, later ones serve the stored file."""
    digest = sha256(data)
    key = f"library/{row.slug}/{safe_name(row.version)}-{digest[:16]}.pdf"
    storage.put(key, data, PDF)
    updated = session.execute(update(library_versions).where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
        library_versions.c.id == row.id, library_versions.c.storage_key.is_(None)
    ).values(storage_key=key, sha256=digest, size=len(data))).rowcount
    if updated:
        return data
    fresh: Row[Any] = session.execute(  # type: ignore[assignment]  # the row is there
        select(library_versions).where(library_versions.c.id == row.id)).first()
    return checked_get(storage, fresh.storage_key, fresh.sha256)


def publish_version(uow: UnitOfWork, storage: Storage, slug: str, data: dict[str, Any], staff_id: str,
                    today: dt.date) -> dict[str, Any]:
    """A staff upload becomes the newest version of a library document."""
    entry = _entry(uow.session, slug)
    if entry.source != "versions":
        raise Unprocessable("Für dieses Dokument können keine Versionen veröffentlicht werden.")
    uploads = [f for f in data.get("files") or [] if f.get("field") == "file"] or (data.get("files") or [])
    if len(uploads) != 1:
        raise ValidationFailed(fields={"file": ["Bitte genau eine PDF-Datei hochladen."]})
    try:
        content = base64.b64decode(uploads[0]["content_b64"], validate=True)
    except ValueError:
        raise ValidationFailed(fields={"file": ["Ungültige Datei."]}) from None
    if not content.startswith(b"%PDF-") or b"%%EOF" not in content[-1024:]:
        raise ValidationFailed(fields={"file": ["Die Datei ist kein PDF."]})
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValidationFailed(fields={"file": ["Höchstens 20 MB."]})
    version = data["version"]
    exists = uow.session.execute(select(library_versions.c.id).where(
        library_versions.c.slug == slug, library_versions.c.version == version)).first()
    if exists:
        raise Conflict(f"Version {version} gibt es schon.", {"fields": {"version": ["Schon vorhanden."]}})
    digest = sha256(content)
    key = f"library/{slug}/{safe_name(version)}-{digest[:16]}.pdf"
    storage.put(key, content, PDF)
    valid_from = data.get("valid_from") or today
    uow.session.execute(library_versions.insert().values(
        slug=slug, version=version, valid_from=valid_from, note=data.get("note"), template=None,
        filename=library.filename(slug, version), storage_key=key, sha256=digest, size=len(content),
        published_at=utcnow(), published_by=str(staff_id)))
    return {"version": version, "valid_from": valid_from, "note": data.get("note"),
            "filename": library.filename(slug, version), "sha256": digest, "published_at": utcnow(),
            "download_path": _version_path(slug, version)}

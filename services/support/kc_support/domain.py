"""Support requests: the rules, plain functions over a unit of work / session.

Who may write (the customer or a contact person) and whether a caller's telephone
password is right is answered by identity before these functions run (its answers are
judged here: ``authorised_author``, ``caller_check``); attachments arrive checked (``kc_support.attachments``)
and already in the store (only their metadata is written here).

States: ``open`` (waiting for staff), ``answered`` (staff replied, waiting for
the customer), ``closed``. A staff reply makes a request ``answered`` (or the
state the agent picks); a customer reply makes it ``open`` again, also a
closed one (the customer is not left talking to a closed request).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, utcnow
from kc_common.errors import Forbidden, NotFound
from kc_support.models import attachments, calls, messages, requests
from kc_support.schemas import CATEGORIES, STATES

CUSTOMER_VISIBLE = ("customer", "staff")
STAFF_AUTHOR = "KundenCenter Support"

OPENED, REPLIED, CLOSED, STATE_CHANGED = ("support_request_opened", "support_request_replied",
                                          "support_request_closed", "support_request_state_changed")


def format_number(request_id: int) -> str:
    return f"SR-{request_id:06d}"


def new_reply_token() -> str:
    return secrets.token_hex(16)


def reply_address(base: str, token: str) -> str | None:
    """``support@example`` + token -> ``support+<token>@example`` (None without a base address)."""
    if not base or "@" not in base:
        return None
    local, _, host = base.rpartition("@")
    return f"{local}+{token}@{host}"


def token_from_address(base: str, address: str) -> str | None:
    """The reply token in ``address`` if it is ``<local>+<token>@<host>`` of ``base``, else None."""
    if not base or not address or "@" not in base:
        return None
    local, _, host = base.rpartition("@")
    a_local, _, a_host = address.strip().strip("<>").rpartition("@")
    prefix = local.lower() + "+"
    if a_host.lower() != host.lower() or not a_local.lower().startswith(prefix):
        return None
    token = a_local[len(prefix):].lower()
    return token if len(token) == 32 and all(c in "0123456789abcdef" for c in token) else None


# --- who may speak for the customer (identity's answers, judged) ---------------------------

NOT_A_CONTACT = "Nicht als Kunde oder Ansprechpartner hinterlegt."


def author_of(contact: dict[str, Any], name: str) -> dict[str, Any]:
    """The request's author from identity's ``check_contact`` answer about ``name``."""
    return {"name": contact.get("name") or name, "kind": contact.get("kind") or "customer",
            "contact_id": contact.get("contact_id"), "email": contact.get("email")}


def authorised_author(contact: dict[str, Any], name: str) -> dict[str, Any]:
    """Only the customer or a contact person identity knows may write; else 403 naming ``name``."""
    if not contact.get("authorised"):
        raise Forbidden(
            f"„{name}“ ist für dieses Kundenkonto nicht berechtigt. Eine Supportanfrage können nur "
            f"der Kunde selbst oder ein unter „Meine Daten › Ansprechpartner“ eingetragener "
            f"Ansprechpartner stellen. Bitte geben Sie Ihren Namen so an, wie er dort hinterlegt ist.",
            {"fields": {"name": [NOT_A_CONTACT]}})
    return author_of(contact, name)


def caller_check(contact: dict[str, Any], password_check: dict[str, Any]) -> tuple[bool, bool]:
    """Telephone support: (name ok, telephone password ok) from identity's two answers."""
    return bool(contact.get("authorised")), bool(password_check.get("verified"))


def require_verified_caller(name_ok: bool, password_ok: bool) -> None:
    """A request taken on the phone needs a verified caller: else 403 naming what failed
    (and nothing is written)."""
    if name_ok and password_ok:
        return
    fields_ = {}
    if not name_ok:
        fields_["caller_name"] = [NOT_A_CONTACT]
    if not password_ok:
        fields_["phone_password"] = ["Telefon-Passwort falsch."]
    raise Forbidden("Der Anrufer ist nicht verifiziert; es wurde keine Anfrage angelegt.",
                    {"fields": fields_})


# --- states ---------------------------------------------------------------------------------

def state_after_reply(author: str, requested: str | None = "answered") -> str | None:
    """The state a reply leaves the request in: a customer's (or their contact's) makes it
    ``open`` again, also a closed one; a staff reply the state the agent picks (``answered``
    unless they pick another)."""
    return "open" if author == "customer" else requested


def state_values(state: str | None, now: dt.datetime) -> dict[str, Any]:
    """The columns a change to ``state`` writes: closing stamps ``closed_at``, any other state
    (a reopened request) clears it."""
    return {"state": state, "updated_at": now, "closed_at": now if state == "closed" else None}


def is_internal(kind: str) -> bool:
    """Notes (and anything but the customer's and staff's replies) stay in the staff view:
    never shown, mailed or handed out as an attachment to the customer."""
    return kind not in CUSTOMER_VISIBLE


def search_pattern(q: str) -> str:
    """The staff search's LIKE pattern: ``q`` anywhere, its ``%``, ``_`` and ``\\`` taken
    literally (escape character ``\\``)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def event_data(row: Row[Any], **extra: Any) -> dict[str, Any]:
    """``data`` of every support_request_* event (docs/contracts.md)."""
    return dict({"request_id": row.id, "number": row.number, "customer_id": row.customer_id,
                 "subject": row.subject, "state": row.state, "category": row.category}, **extra)


# --- reading ----------------------------------------------------------------------------

def _by_number(session: Session, number: str, customer_id: int | None = None, lock: bool = False) -> Row[Any]:
    query = select(requests).where(requests.c.number == (number or "").upper())
    if customer_id is not None:
        query = query.where(requests.c.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None:  # another customer's request looks exactly like one that does not exist
        raise NotFound("Diese Supportanfrage gibt es nicht.")
    return row


def _summary(row: Row[Any]) -> dict[str, Any]:
    data = dict(row._mapping)
    data["state_text"] = STATES[row.state]
    data["category_text"] = CATEGORIES[row.category]
    return data


def _messages(session: Session, request_id: int,
              kinds: Collection[str] | None = None) -> list[dict[str, Any]]:
    query = select(messages).where(messages.c.request_id == request_id).order_by(messages.c.id)
    if kinds is not None:
        query = query.where(messages.c.kind.in_(kinds))
    rows = session.execute(query).all()
    files: dict[int, list[dict[str, Any]]] = {}
    for a in session.execute(select(attachments).where(attachments.c.request_id == request_id)
                             .order_by(attachments.c.id)):
        files.setdefault(a.message_id, []).append(dict(a._mapping))
    return [dict(m._mapping, attachments=files.get(m.id, []), internal=is_internal(m.kind)) for m in rows]


def customer_view(session: Session, customer_id: int, number: str) -> dict[str, Any]:
    row = _by_number(session, number, customer_id)
    return dict(_summary(row), messages=_messages(session, row.id, CUSTOMER_VISIBLE))


def staff_view(session: Session, number: str) -> dict[str, Any]:
    row = _by_number(session, number)
    call_rows = session.execute(select(calls).where(calls.c.request_id == row.id).order_by(calls.c.id))
    return dict(_summary(row), messages=_messages(session, row.id),
                calls=[dict(c._mapping) for c in call_rows])


def _page(session: Session, query: Any, page: int, per_page: int) -> dict[str, Any]:
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(requests.c.updated_at.desc(), requests.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [_summary(r) for r in rows], "total": total, "page": page, "per_page": per_page}


def list_for_customer(session: Session, customer_id: int, state: str | None = None, page: int = 1,
                      per_page: int = 10) -> dict[str, Any]:
    query = select(requests).where(requests.c.customer_id == customer_id)
    if state:
        query = query.where(requests.c.state == state)
    return _page(session, query, page, per_page)


def list_for_staff(session: Session, staff_id: str, state: str | None = None, category: str | None = None,
                   assignee: str | None = None, customer_id: int | None = None, q: str | None = None,
                   page: int = 1, per_page: int = 10) -> dict[str, Any]:
    query = select(requests)
    if state:
        query = query.where(requests.c.state == state)
    if category:
        query = query.where(requests.c.category == category)
    if assignee == "none":
        query = query.where(requests.c.assignee_staff_id.is_(None))
    elif assignee:
        query = query.where(requests.c.assignee_staff_id == (staff_id if assignee == "me" else assignee))
    if customer_id is not None:
        query = query.where(requests.c.customer_id == customer_id)
    if q:
        like = search_pattern(q)
        query = query.where(or_(requests.c.number.ilike(like, escape="\\"),
                                requests.c.subject.ilike(like, escape="\\")))
    return _page(session, query, page, per_page)


def attachment_for(session: Session, number: str, attachment_id: int,
                   customer_id: int | None = None) -> Row[Any]:
    """An attachment's metadata; a customer gets only their own, never one of an internal message."""
    row = _by_number(session, number, customer_id)
    try:
        attachment_id = int(attachment_id)
    except (TypeError, ValueError):
        raise NotFound("Diesen Anhang gibt es nicht.") from None
    query = (select(attachments, messages.c.kind)
             .join(messages, messages.c.id == attachments.c.message_id)
             .where(and_(attachments.c.id == attachment_id, attachments.c.request_id == row.id)))
    found = session.execute(query).first()
    if found is None or (customer_id is not None and is_internal(found.kind)):
        raise NotFound("Diesen Anhang gibt es nicht.")
    return found


# --- writing ----------------------------------------------------------------------------

def _add_message(session: Session, request_id: int, kind: str, author_name: str, body: str, via: str,
                 staff_id: str | None = None, files: Sequence[dict[str, Any]] = (),
                 now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    message_id = session.execute(messages.insert().values(
        request_id=request_id, kind=kind, author_name=author_name, staff_id=staff_id, via=via,
        body=body, created_at=now).returning(messages.c.id)).scalar_one()
    for f in files:  # f: dict(filename, content_type, size, sha256) of a stored upload
        session.execute(attachments.insert().values(
            request_id=request_id, message_id=message_id, created_at=now, **f))
    return message_id


def _reload(session: Session, request_id: int) -> Row[Any]:
    return session.execute(select(requests).where(requests.c.id == request_id)).first()  # type: ignore[return-value]  # it exists


def open_request(uow: UnitOfWork, customer_id: int, author: dict[str, Any], subject: str, message: str,
                 category: str | None, files: Sequence[dict[str, Any]] = (), via: str = "web") -> str:
    """A new request with its first message; emits ``support_request_opened``. Returns its number."""
    now = utcnow()
    session = uow.session
    request_id = session.execute(requests.insert().values(
        customer_id=customer_id, author_name=author["name"], author_kind=author["kind"],
        contact_id=None if author.get("contact_id") is None else str(author["contact_id"]),
        author_email=author.get("email"), subject=subject, category=category, state="open",
        reply_token=new_reply_token(), created_at=now, updated_at=now).returning(requests.c.id)).scalar_one()
    number = format_number(request_id)
    session.execute(update(requests).where(requests.c.id == request_id).values(number=number))
    message_id = _add_message(session, request_id, "customer", author["name"], message, via,
                              files=files, now=now)
    row = _reload(session, request_id)
    uow.emit(OPENED, event_data(row, message_id=message_id, author_name=row.author_name,
                                author_email=row.author_email, via=via))
    return number


def _set_state(uow: UnitOfWork, row: Row[Any], state: str | None, now: dt.datetime, **why: Any) -> Row[Any]:
    """Change the state (no-op when equal); emits ``support_request_closed`` on closing."""
    if row.state == state:
        return row
    uow.session.execute(update(requests).where(requests.c.id == row.id).values(**state_values(state, now)))
    new = _reload(uow.session, row.id)
    if state == "closed":
        uow.emit(CLOSED, event_data(new, old_state=row.state, **why))
    return new


def customer_reply(uow: UnitOfWork, customer_id: int, number: str, author_name: str, body: str,
                   files: Sequence[dict[str, Any]] = (), via: str = "web") -> str:
    """The customer (or their contact) adds to the thread; the request is open again."""
    now = utcnow()
    row = _by_number(uow.session, number, customer_id, lock=True)
    message_id = _add_message(uow.session, row.id, "customer", author_name, body, via, files=files, now=now)
    uow.session.execute(update(requests).where(requests.c.id == row.id).values(updated_at=now))
    new = _set_state(uow, row, state_after_reply("customer"), now)
    uow.emit(REPLIED, event_data(new, message_id=message_id, author="customer", via=via,
                                 reopened=row.state == "closed"))
    return row.number


def mail_reply(uow: UnitOfWork, token: str, author_name: str, body: str,
               files: Sequence[dict[str, Any]] = ()) -> str:
    """A reply by e-mail, matched by the request's secret reply token; returns the number."""
    row = request_by_token(uow.session, token)
    if row is None:
        raise NotFound("Zu dieser Antwortadresse gibt es keine Supportanfrage.")
    return customer_reply(uow, row.customer_id, row.number, author_name, body, files, via="email")


def staff_reply(uow: UnitOfWork, staff_id: str, number: str, body: str, state: str | None = "answered",
                files: Sequence[dict[str, Any]] = (), via: str = "web") -> str:
    """A reply the customer sees (and gets by mail); then the request is in ``state``."""
    now = utcnow()
    row = _by_number(uow.session, number, lock=True)
    message_id = _add_message(uow.session, row.id, "staff", STAFF_AUTHOR, body, via, staff_id=staff_id,
                              files=files, now=now)
    values: dict[str, Any] = {"updated_at": now}
    if row.assignee_staff_id is None:  # who answers an unassigned request takes it
        values["assignee_staff_id"] = staff_id
    uow.session.execute(update(requests).where(requests.c.id == row.id).values(**values))
    new = _set_state(uow, row, state_after_reply("staff", state), now, by="staff")
    uow.emit(REPLIED, event_data(new, message_id=message_id, author="staff", via=via, staff_id=staff_id))
    return row.number


def change_state(uow: UnitOfWork, staff_id: str, number: str, state: str | None,
                 category: str | None = None) -> str:
    """Staff set the state (and optionally re-categorise); emits state_changed (mail) when it changed."""
    now = utcnow()
    row = _by_number(uow.session, number, lock=True)
    if category and category != row.category:
        uow.session.execute(update(requests).where(requests.c.id == row.id)
                            .values(category=category, updated_at=now))
        row = _reload(uow.session, row.id)
    new = _set_state(uow, row, state, now, by="staff")
    if new.state != row.state:
        uow.emit(STATE_CHANGED, event_data(new, old_state=row.state, staff_id=staff_id))
    return row.number


def assign(uow: UnitOfWork, number: str, assignee: str | None) -> str:
    row = _by_number(uow.session, number, lock=True)
    uow.session.execute(update(requests).where(requests.c.id == row.id)
                        .values(assignee_staff_id=assignee, updated_at=utcnow()))
    return row.number


def add_note(uow: UnitOfWork, staff_id: str, number: str, body: str) -> str:
    """An internal note: in the staff view only, never shown or mailed to the customer."""
    row = _by_number(uow.session, number, lock=True)
    _add_message(uow.session, row.id, "note", STAFF_AUTHOR, body, "web", staff_id=staff_id)
    return row.number


def record_call(uow: UnitOfWork, staff_id: str, number: str, caller_name: str, name_authorised: bool,
                password_verified: bool, note: str | None) -> tuple[int, bool]:
    """Record a telephone call and the result of the caller's verification (never the password)."""
    row = _by_number(uow.session, number, lock=True)
    now = utcnow()
    verified = bool(name_authorised and password_verified)
    call_id = uow.session.execute(calls.insert().values(
        request_id=row.id, staff_id=staff_id, caller_name=caller_name, name_authorised=name_authorised,
        password_verified=password_verified, verified=verified, note=note or "",
        created_at=now).returning(calls.c.id)).scalar_one()
    uow.session.execute(update(requests).where(requests.c.id == row.id).values(updated_at=now))
    return call_id, verified


def request_by_id(session: Session, request_id: int) -> Row[Any]:
    return _reload(session, request_id)


def message_by_id(session: Session, message_id: int) -> Row[Any] | None:
    return session.execute(select(messages).where(messages.c.id == message_id)).first()


def files_of(session: Session, message: Row[Any]) -> Sequence[Row[Any]]:
    """The attachments of a message, in upload order."""
    return session.execute(select(attachments).where(
        attachments.c.message_id == message.id).order_by(attachments.c.id)).all()


def request_by_token(session: Session, token: str) -> Row[Any] | None:
    if not token:
        return None
    return session.execute(select(requests).where(requests.c.reply_token == token)).first()


# --- account closure ------------------------------------------------------------------------------

ERASED = "Gelöscht"


def forget_customer(uow: UnitOfWork, data: dict[str, Any]) -> int:
    """identity's ``customer_erased``: the customer's requests stay as numbered records
    (closed), but who wrote and what they wrote goes: author names and addresses, the subject,
    the customer's message bodies, callers' names and the attachments' records."""
    session = uow.session
    ids = [r for r in session.execute(select(requests.c.id).where(
        requests.c.customer_id == int(data["customer_id"]))).scalars()]
    if not ids:
        return 0
    now = utcnow()
    session.execute(attachments.delete().where(attachments.c.request_id.in_(ids)))
    session.execute(messages.update().where(messages.c.request_id.in_(ids), messages.c.kind == "customer")
                    .values(author_name=ERASED, body="[gelöscht]"))
    session.execute(calls.update().where(calls.c.request_id.in_(ids)).values(caller_name=ERASED))
    session.execute(requests.update().where(requests.c.id.in_(ids)).values(
        author_name=ERASED, author_email=None, contact_id=None, subject="Gelöschte Anfrage",
        state="closed", closed_at=func.coalesce(requests.c.closed_at, now), updated_at=now))
    return len(ids)

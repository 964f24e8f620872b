"""Customers and their address data (Adressdaten): Kundennummer, views, changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, next_in_series, utcnow
from kc_common.errors import Conflict, NotFound, ValidationFailed
from kc_identity import address
from kc_identity.domain.common import hash_password
from kc_identity.domain.sessions import sessions_changed
from kc_identity.models import counters, customers

FIRST_CUSTOMER_NUMBER = 100001


def next_number(session: Session, series: str, first: int) -> int:
    """Next value of a gap-free series (customer numbers are never reused)."""
    return next_in_series(session, counters, series, first)


def create_customer(uow: UnitOfWork, *, email: str, last_name: str, first_name: str,
                    password: str | None = None, password_hash: str | None = None, company: str | None = "",
                    email_verified: bool = True, terms_version: str | None = None,
                    terms_accepted_at: dt.datetime | None = None, **fields: Any) -> int:
    """A new customer (Kundennummer from the counter); publishes ``customer_updated``.

    ``email_verified=False`` for a sign-up (double opt-in pending) or a customer created by staff."""
    session = uow.session
    number = next_number(session, "customer", FIRST_CUSTOMER_NUMBER)
    now = utcnow()
    extra = {k: fields[k] for k in ("street", "zip", "city", "country", "phone", "fax", "mobile",
                                    "vat_id") if fields.get(k) is not None}
    session.execute(customers.insert().values(
        id=number, email=email.lower(), company=company, last_name=last_name,
        first_name=first_name, password_hash=password_hash or hash_password(password),  # type: ignore[arg-type]  # one of the two is given
        created_at=now, updated_at=now, email_verified_at=now if email_verified else None,
        terms_version=terms_version, terms_accepted_at=terms_accepted_at, **extra))
    uow.emit("customer_updated", customer_view(get_customer_row(session, number)))
    return number


def get_customer_row(session: Session, customer_id: int, *, lock: bool = False) -> Row[Any]:
    stmt = select(customers).where(customers.c.id == customer_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound("Kunde nicht gefunden.")
    return row


def find_customer_by_login(session: Session, login: str) -> Row[Any] | None:
    login = login.strip()
    if login.isdigit():
        if len(login) > 18:
            return None
        cond = customers.c.id == int(login)
    else:
        cond = func.lower(customers.c.email) == login.lower()
    return session.execute(select(customers).where(cond)).first()


def customer_view(row: Row[Any]) -> dict[str, Any]:
    """The ``customer_updated`` fields (docs/contracts.md) of a customer row."""
    data = row._mapping
    return {"customer_id": row.id, "company": row.company, "first_name": row.first_name,
            "last_name": row.last_name, "email": row.email,
            **{k: data.get(k) for k in ("street", "zip", "city", "country", "phone", "fax",
                                        "mobile", "vat_id")},
            "is_business": bool(row.company)}


def address_view(row: Row[Any]) -> dict[str, Any]:
    """The Adressdaten form: the contract fields plus the optimistic-lock version."""
    return {**customer_view(row), "version": row.version, "updated_at": row.updated_at,
            "email_verified": row.email_verified_at is not None}


COMPANY_CHANGE_REFUSED = ("Der Firmenname kann hier nicht geändert werden: dafür ist ein Inhaberwechsel "
                          "nötig. Das Formular finden Sie unter „Meine Dokumente → Inhaberwechsel“.")


def update_address(uow: UnitOfWork, customer_id: int, data: dict[str, Any], *, staff: bool = False,
                   client_ip: str | None = None,
                   request_email_change: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Change the address data (all valid or nothing saved); publishes ``customer_updated``.

    The customer may not change the company (owner change); staff may (``staff=True``).
    ``data['version']``, when given, must be the current version (optimistic locking).
    A customer's new e-mail address is not saved here: ``request_email_change(new_email)``
    sends it a confirmation link (the change happens when it is confirmed).
    """
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    data = dict(data)
    expected_version = data.pop("version", None)
    errors = {}
    if not staff and "company" in data and " ".join((data["company"] or "").split()) != row.company:
        errors["company"] = [COMPANY_CHANGE_REFUSED]
        data.pop("company")
    # Land is not on the customer's form: when it is not sent, the stored country stays.
    required = tuple(f for f in address.REQUIRED if f != "country" or "country" in data) \
        + (("company",) if staff and "company" in data else ())
    cleaned, field_errors = address.clean(
        data, required=required if not staff else tuple(f for f in required if f in data),
        default_country=row.country or address.DEFAULT_COUNTRY)
    for field, messages in field_errors.items():
        errors.setdefault(field, []).extend(messages)
    if cleaned.get("email") and cleaned["email"] != row.email and "email" not in errors:
        taken = session.execute(select(customers.c.id).where(
            func.lower(customers.c.email) == cleaned["email"], customers.c.id != customer_id)).first()
        if taken:
            errors["email"] = ["Diese E-Mail-Adresse ist bereits einem anderen Kundenkonto zugeordnet."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    if expected_version is not None and int(expected_version) != row.version:
        raise Conflict("Die Adressdaten wurden inzwischen geändert. Bitte laden Sie sie neu.",
                       {"reason": "version_conflict", "version": str(row.version)})
    changes = {k: v for k, v in cleaned.items() if row._mapping[k] != v}
    old_email = row.email
    new_email = changes.pop("email", None) if request_email_change is not None else None
    if new_email is not None:
        request_email_change(new_email)  # type: ignore[misc]  # new_email is None without it
    if not changes:
        return address_view(row)
    try:
        with session.begin_nested():  # a concurrent change to the same e-mail loses here, not with a 500
            session.execute(update(customers).where(customers.c.id == customer_id).values(
                **changes, version=row.version + 1, updated_at=utcnow()))
    except IntegrityError:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields={"email": [
            "Diese E-Mail-Adresse ist bereits einem anderen Kundenkonto zugeordnet."]}) from None
    if "email" in changes:  # security notice to the address that was valid until now
        sessions_changed(uow, customer_id=customer_id)
        uow.emit("email_changed", {"customer_id": customer_id, "old_email": old_email,
                                   "new_email": changes["email"], "changed_at": utcnow(),
                                   "client_ip": client_ip, "by_staff": staff})
    row = get_customer_row(session, customer_id)
    uow.emit("customer_updated", customer_view(row))
    return address_view(row)

"""Contact persons (Ansprechpartner) and who may speak for a customer."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from kc_common.db import utcnow
from kc_common.errors import NotFound, Unprocessable, ValidationFailed
from kc_identity import address
from kc_identity.domain.customers import get_customer_row
from kc_identity.models import contacts, customers

MAX_CONTACTS = 20


def _contact_view(r: Row[Any]) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "email": r.email, "phone": r.phone, "role": r.role,
            "relation": r.relation, "may_support": r.may_support, "may_billing": r.may_billing,
            "created_at": r.created_at, "updated_at": r.updated_at}


def clean_contact(data: dict[str, Any], country: str) -> dict[str, Any]:
    """A contact person's fields, normalised (``country``: the customer's, for the phone
    number); all problems at once as ValidationFailed. A name and an e-mail address or a
    telephone number are required."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    name = " ".join((data.get("name") or "").split())
    if not name:
        errors["name"] = ["Bitte geben Sie den Namen des Ansprechpartners an."]
    elif len(name) > 200:
        errors["name"] = ["Der Name darf höchstens 200 Zeichen lang sein."]
    out["name"] = name
    for field, check in (("email", address.email), ("phone", lambda v: address.phone(v, country))):
        value = (data.get(field) or "").strip()
        out[field] = None
        if value:
            try:
                out[field] = check(value)
            except ValueError as exc:
                errors[field] = [str(exc)]
    if not out["email"] and not out["phone"] and "email" not in errors and "phone" not in errors:
        errors["email"] = ["Bitte geben Sie eine E-Mail-Adresse oder eine Telefonnummer an."]
    out["role"] = " ".join((data.get("role") or "").split())
    if len(out["role"]) > 100:
        errors["role"] = ["Die Funktion darf höchstens 100 Zeichen lang sein."]
    out["relation"] = data.get("relation") or "external"
    out["may_support"] = bool(data.get("may_support"))
    out["may_billing"] = bool(data.get("may_billing"))
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    return out


def list_contacts(session: Session, customer_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                           .order_by(contacts.c.created_at, contacts.c.id)).all()
    return [_contact_view(r) for r in rows]


def add_contact(session: Session, customer_id: int, data: dict[str, Any]) -> dict[str, Any]:
    customer = get_customer_row(session, customer_id, lock=True)
    values = clean_contact(data, customer.country)
    count = session.execute(select(func.count()).select_from(contacts)
                            .where(contacts.c.customer_id == customer_id)).scalar()
    if count >= MAX_CONTACTS:  # type: ignore[operator]  # a count is never NULL
        raise Unprocessable(f"Es sind höchstens {MAX_CONTACTS} Ansprechpartner möglich.")
    now = utcnow()
    contact_id = str(uuid.uuid4())
    session.execute(contacts.insert().values(id=contact_id, customer_id=customer_id, created_at=now,
                                             updated_at=now, **values))
    return _get_contact(session, customer_id, contact_id)


def _get_contact(session: Session, customer_id: int, contact_id: str) -> dict[str, Any]:
    row = session.execute(select(contacts).where(contacts.c.id == str(contact_id),
                                                 contacts.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound("Ansprechpartner nicht gefunden.")
    return _contact_view(row)


def update_contact(session: Session, customer_id: int, contact_id: str,
                   data: dict[str, Any]) -> dict[str, Any]:
    _get_contact(session, customer_id, contact_id)
    customer = get_customer_row(session, customer_id)
    values = clean_contact(data, customer.country)
    session.execute(update(contacts).where(contacts.c.id == str(contact_id))
                    .values(updated_at=utcnow(), **values))
    return _get_contact(session, customer_id, contact_id)


def delete_contact(session: Session, customer_id: int, contact_id: str) -> None:
    _get_contact(session, customer_id, contact_id)
    session.execute(contacts.delete().where(contacts.c.id == str(contact_id)))


def _norm_name(name: str) -> str:
    return " ".join((name or "").replace(",", " ").casefold().split())


def check_contact(session: Session, customer_id: int, name: str, purpose: str) -> dict[str, Any]:
    """May ``name`` (a person's name or e-mail address) speak for the customer about
    ``purpose`` (``support`` or ``billing``)? The customer themself always may; a
    registered contact person when they hold that permission."""
    if purpose not in ("support", "billing"):
        raise ValidationFailed(fields={"purpose": ["Erlaubt sind support und billing."]})
    row = session.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is None:
        return speaker(None, (), name, purpose)
    rows = session.execute(select(contacts).where(contacts.c.customer_id == customer_id)).all()
    return speaker(row, rows, name, purpose)


def speaker(customer: Any, contact_rows: Sequence[Any], name: str, purpose: str) -> dict[str, Any]:
    """identity's answer to "may ``name`` speak for this customer about ``purpose``": the
    customer themself (their name in any order, case and commas, or their e-mail address)
    always; a contact person matched the same way only with the permission for ``purpose``
    (``may_support`` / ``may_billing``), else denied naming the contact; anyone else denied."""
    denied = {"authorised": False, "kind": None, "contact_id": None, "name": name, "email": None}
    if customer is None:
        return denied
    wanted = _norm_name(name)
    wanted_sorted = sorted(wanted.split())
    own = _norm_name(f"{customer.first_name} {customer.last_name}")
    if wanted and (sorted(own.split()) == wanted_sorted or wanted == customer.email.casefold()):
        return {"authorised": True, "kind": "customer", "contact_id": None,
                "name": f"{customer.first_name} {customer.last_name}", "email": customer.email}
    permission = "may_support" if purpose == "support" else "may_billing"
    for contact in contact_rows:
        if wanted and (sorted(_norm_name(contact.name).split()) == wanted_sorted
                       or (contact.email and wanted == contact.email.casefold())):
            if getattr(contact, permission):
                return {"authorised": True, "kind": "contact", "contact_id": contact.id,
                        "name": contact.name, "email": contact.email}
            return dict(denied, kind="contact", contact_id=contact.id, name=contact.name,
                        email=contact.email)
    return denied

"""Account closure (Konto schließen) and erasure, identity's side.

1. ``request_closure``: the customer confirms with the service password; identity records the
   request and emits ``closure_requested`` (catalog cancels every running contract by its
   notice period).
2. identity checks the conditions outside any transaction whenever something may have changed
   (its own ``closure_requested``, catalog's ``contract_terminated``, billing's
   ``payment_received``): catalog's ``open_contracts`` (none left that is not terminated) and
   billing's ``customer_balance`` (exactly 0.00: nothing owed, no credit to pay back).
3. ``erase``: identity pseudonymises its own data (the customer row stays as the Kundennummer's
   anchor: name „Gelöscht“, address, phone numbers, secrets, sessions, contacts, links, login and
   check logs gone) and emits ``customer_erased`` once; every other service does its part.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, update
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, utcnow
from kc_identity.domain.common import hash_password
from kc_identity.domain.customers import get_customer_row
from kc_identity.domain.sessions import sessions_changed
from kc_identity.domain.throttle import Throttle, reauthenticate
from kc_identity.models import (
    account_tokens,
    contacts,
    customers,
    login_events,
    notification_preferences,
    phone_password_checks,
    recovery_codes,
    sessions,
)

ERASED_NAME = "Gelöscht"


def erased_email(customer_id: int) -> str:
    return f"kunde-{customer_id}@geloescht.invalid"


def status(row: Row[Any]) -> dict[str, Any]:
    if row.erased_at is not None:
        state = "erased"
    elif row.closure_requested_at is not None:
        state = "requested"
    else:
        state = "none"
    return {"state": state, "requested_at": row.closure_requested_at, "erased_at": row.erased_at}


def request_closure(uow: UnitOfWork, customer_id: int, password: str, *, client_ip: str | None,
                    throttle: Throttle) -> dict[str, Any]:
    """The closure status; a wrong password is recorded and raised after the commit."""
    row = get_customer_row(uow.session, customer_id, lock=True)
    reauthenticate(uow.session, row, password, client_ip=client_ip, throttle=throttle)
    if row.closure_requested_at is None:
        now = utcnow()
        uow.session.execute(update(customers).where(customers.c.id == customer_id).values(
            closure_requested_at=now))
        uow.emit("closure_requested", {"customer_id": customer_id, "requested_at": now})
        sessions_changed(uow, customer_id=customer_id)  # gateways' cached "closing" is stale
        row = get_customer_row(uow.session, customer_id)
    return status(row)


def pending(session: Session, customer_id: int) -> bool:
    """True when the customer asked to close and is not erased yet."""
    row = session.execute(customers.select().where(customers.c.id == customer_id)).first()
    return row is not None and row.closure_requested_at is not None and row.erased_at is None


def erase(uow: UnitOfWork, customer_id: int, *, open_contracts: int, balance: Decimal) -> bool:
    """Pseudonymise identity's data and emit ``customer_erased`` (once; re-checked under the lock)."""
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    if row.closure_requested_at is None or row.erased_at is not None:
        return False
    now = utcnow()
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        email=erased_email(customer_id), company="", last_name=ERASED_NAME, first_name=ERASED_NAME,
        password_hash=hash_password(f"!erased-{now.isoformat()}-{customer_id}") + "!",  # never verifies
        street=None, zip=None, city=None, phone=None, fax=None, mobile=None, vat_id=None,
        phone_password_enc=None, phone_password_set_at=None, ip_whitelist=[], totp_secret_enc=None,
        totp_pending_enc=None, totp_enabled_at=None, totp_last_step=None, erased_at=now,
        updated_at=now, version=customers.c.version + 1))
    for table in (sessions, contacts, account_tokens, recovery_codes, notification_preferences,
                  phone_password_checks, login_events):
        session.execute(delete(table).where(table.c.customer_id == customer_id))
    sessions_changed(uow, customer_id=customer_id)  # every gateway forgets the ended sessions
    uow.emit("customer_erased", {"customer_id": customer_id, "erased_at": now,
                                 "requested_at": row.closure_requested_at,
                                 "open_contracts": open_contracts, "balance": balance})
    return True

"""The service password (change) and the telephone password (set, reveal, staff check)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, after_commit, as_utc, utcnow
from kc_common.errors import (
    Forbidden,
    NotFound,
    TooManyRequests,
    Unprocessable,
    ValidationFailed,
)
from kc_identity import policy
from kc_identity.domain.common import hash_password, retry_seconds, verify_password
from kc_identity.domain.customers import get_customer_row
from kc_identity.domain.sessions import end_other_sessions, sessions_changed
from kc_identity.domain.throttle import (
    Throttle,
    blocked_until,
    check_throttle,
    counting_start,
    reauthenticate,
    record_login,
)
from kc_identity.models import customers, phone_password_checks, sessions
from kc_identity.vault import Vault


def change_password(uow: UnitOfWork, customer_id: int, data: dict[str, Any], *, session_id: str | None,
                    client_ip: str | None, throttle: Throttle) -> None:
    """Change the service password. A wrong current password is recorded as a failed attempt
    and throttled like a login (the error is raised after the commit)."""
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    check_throttle(session, realm="customer", account=str(customer_id), client_ip=None, throttle=throttle)
    if not verify_password(row.password_hash, data["current_password"]):
        record_login(session, realm="customer", account=str(customer_id), customer_id=customer_id,
                     client_ip=client_ip, success=False, reason="reauth_failed")
        raise after_commit(ValidationFailed("Das aktuelle Passwort ist falsch.",
                                            fields={"current_password": ["Das aktuelle Passwort ist falsch."]}))
    errors = new_password_errors(data["new_password"], data["new_password_repeat"], customer_id=customer_id,
                                 email=row.email,
                                 is_current=lambda p: verify_password(row.password_hash, p))
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    now = utcnow()
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        password_hash=hash_password(data["new_password"]), password_changed_at=now, updated_at=now))
    ended = end_other_sessions(session, customer_id, session_id)
    sessions_changed(uow, customer_id=customer_id)
    uow.emit("password_changed", {"customer_id": customer_id, "changed_at": now,
                                  "client_ip": client_ip, "sessions_ended": ended})


def new_password_errors(new: str, repeat: str, *, customer_id: int, email: str,
                        is_current: Callable[[str], bool]) -> dict[str, list[str]]:
    """``{field: [messages]}`` of a new service password: the policy (length, nothing personal,
    not easily guessed), different from the current one (``is_current(p)``: checked only when
    the policy is met), repeated exactly. Empty: acceptable."""
    errors: dict[str, list[str]] = {}
    problems = policy.service_password_problems(new, customer_id=customer_id, email=email)
    if problems:
        errors["new_password"] = problems
    elif is_current(new):
        errors["new_password"] = ["Das neue Passwort muss sich vom aktuellen unterscheiden."]
    if new != repeat:
        errors["new_password_repeat"] = ["Die Wiederholung stimmt nicht mit dem neuen Passwort überein."]
    return errors


def set_phone_password(session: Session, customer_id: int, data: dict[str, Any],
                       vault: Vault) -> dict[str, Any]:
    row = get_customer_row(session, customer_id, lock=True)
    errors = {}
    problems = policy.phone_password_problems(
        data["phone_password"], service_password_hash_check=lambda p: verify_password(row.password_hash, p))
    if problems:
        errors["phone_password"] = problems
    if data["phone_password"] != data["phone_password_repeat"]:
        errors["phone_password_repeat"] = ["Die Wiederholung stimmt nicht mit dem Telefon-Passwort überein."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    now = utcnow()
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        phone_password_enc=vault.encrypt(data["phone_password"]), phone_password_set_at=now))
    return {"phone_password_set": True, "phone_password_set_at": now}


def phone_password_status(session: Session, customer_id: int) -> dict[str, Any]:
    row = get_customer_row(session, customer_id)
    return {"phone_password_set": row.phone_password_enc is not None,
            "phone_password_set_at": row.phone_password_set_at}


def reveal_phone_password(session: Session, customer_id: int, *, session_id: str | None, password: str,
                          vault: Vault, fresh: dt.timedelta, client_ip: str | None,
                          throttle: Throttle) -> dict[str, Any]:
    """The telephone password for a freshly authenticated customer: the session is younger
    than ``fresh``, or the service password is given again (a wrong one is recorded)."""
    row = get_customer_row(session, customer_id)
    if password:
        reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    else:
        created = session.execute(select(sessions.c.created_at).where(
            sessions.c.id == (session_id or ""), sessions.c.customer_id == customer_id)).scalar()
        if created is None or as_utc(created) + fresh < utcnow():
            raise Forbidden("Bitte bestätigen Sie zuerst Ihr Service-Passwort, um das "
                            "Telefon-Passwort anzuzeigen.", {"reason": "reauthentication_required"})
    if row.phone_password_enc is None:
        raise NotFound("Es ist noch kein Telefon-Passwort hinterlegt.")
    return {"phone_password": vault.decrypt(row.phone_password_enc),
            "phone_password_set_at": row.phone_password_set_at}


def verify_phone_password(session: Session, customer_id: int, password: str, *, staff_id: str, vault: Vault,
                          max_failures: int, window: dt.timedelta) -> dict[str, Any]:
    """Staff check what a caller says; failures per customer are limited within ``window``.
    Every check is recorded, the right and the wrong ones."""
    row = get_customer_row(session, customer_id)
    now = utcnow()
    last_ok = session.execute(select(func.max(phone_password_checks.c.at)).where(
        phone_password_checks.c.customer_id == customer_id,
        phone_password_checks.c.success.is_(True))).scalar()
    start = counting_start(now - window, last_ok)
    failures = session.execute(select(phone_password_checks.c.at).where(
        phone_password_checks.c.customer_id == customer_id, phone_password_checks.c.success.is_(False),
        phone_password_checks.c.at > start).order_by(phone_password_checks.c.at)).scalars().all()
    until = blocked_until(failures, max_failures, window)
    if until is not None:
        raise TooManyRequests("Zu viele falsche Telefon-Passwörter für diesen Kunden. Bitte später erneut "
                              "versuchen oder den Kunden anders verifizieren.",
                              {"retry_after": retry_seconds(until - now)})
    if row.phone_password_enc is None:
        raise Unprocessable("Der Kunde hat kein Telefon-Passwort hinterlegt.")
    ok = secrets.compare_digest(vault.decrypt(row.phone_password_enc).encode(), (password or "").encode())
    session.execute(phone_password_checks.insert().values(customer_id=customer_id, staff_id=staff_id,
                                                          success=ok, at=now))
    return {"verified": ok}

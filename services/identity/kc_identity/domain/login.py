"""Logging in (customer and back office realm): the password, the IP whitelist and the
second factor checked, the attempt recorded and throttled, a session opened."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from kc_common.db import after_commit, utcnow
from kc_common.errors import Forbidden, Unauthenticated
from kc_identity import netlist
from kc_identity.domain.common import (
    CUSTOMER_TOKEN_PREFIX,
    DUMMY_HASH,
    STAFF_TOKEN_PREFIX,
    hash_token,
    verify_password,
)
from kc_identity.domain.customers import find_customer_by_login
from kc_identity.domain.sessions import whitelist_message
from kc_identity.domain.throttle import Throttle, check_throttle, record_login
from kc_identity.domain.two_factor import second_factor_ok
from kc_identity.models import sessions, staff, staff_sessions
from kc_identity.vault import Vault

BAD_LOGIN = "Kundennummer/E-Mail oder Passwort ist falsch."
BAD_STAFF_LOGIN = "E-Mail oder Passwort ist falsch."
UNVERIFIED_NOTICE = ("Bitte bestätigen Sie Ihre E-Mail-Adresse über den Link in unserer E-Mail. "
                     "Bis dahin können Sie nicht bestellen oder bezahlen.")


def _account_key(login_text: str, row: Row[Any] | None) -> str:
    return str(row.id) if row is not None else login_text.strip().lower()


def attempt_login(session: Session, *, login: str, password: str, client_ip: str | None, idle: dt.timedelta,
                  absolute: dt.timedelta, throttle: Throttle, otp: str | None = None,
                  vault: Vault | None = None) -> dict[str, Any]:
    """Try a customer login; returns the new session.

    The attempt is recorded either way: a failure is raised ``after_commit``, so that it
    counts even though the request fails. An unknown login and a wrong password get the
    same answer (and cost the same time).
    """
    row = find_customer_by_login(session, login)
    account = _account_key(login, row)
    check_throttle(session, realm="customer", account=account, client_ip=client_ip, throttle=throttle)
    ok = verify_password(row.password_hash if row is not None else DUMMY_HASH, password)
    if row is None or not ok:
        record_login(session, realm="customer", account=account, customer_id=row.id if row else None,
                     client_ip=client_ip, success=False, reason="bad_credentials")
        raise after_commit(Unauthenticated(BAD_LOGIN))
    if not netlist.allows(row.ip_whitelist, client_ip):
        record_login(session, realm="customer", account=account, customer_id=row.id,
                     client_ip=client_ip, success=False, reason="ip_not_allowed")
        raise after_commit(Forbidden(whitelist_message(client_ip),
                                     {"reason": "ip_not_allowed", "client_ip": client_ip}))
    if row.totp_secret_enc is not None:
        if not (otp or "").strip():  # the password was right: ask for the second factor
            raise Unauthenticated("Bitte geben Sie den Bestätigungscode Ihrer Authenticator-App "
                                  "oder einen Wiederherstellungscode ein.", {"reason": "otp_required"})
        if not second_factor_ok(session, row, otp, vault):  # type: ignore[arg-type]  # customer logins pass the vault
            record_login(session, realm="customer", account=account, customer_id=row.id,
                         client_ip=client_ip, success=False, reason="bad_otp")
            raise after_commit(Unauthenticated("Der Bestätigungscode ist falsch oder schon verwendet.",
                                               {"reason": "otp_required"}))
    record_login(session, realm="customer", account=account, customer_id=row.id,
                 client_ip=client_ip, success=True, reason="ok")
    token = CUSTOMER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(sessions.insert().values(
        id=str(uuid.uuid4()), token_hash=hash_token(token), customer_id=row.id,
        client_ip=client_ip, created_at=now, last_seen_at=now, expires_at=now + absolute))
    verified = row.email_verified_at is not None
    return {"token": token, "token_type": "Bearer", "customer_id": row.id,
            "expires_at": min(now + absolute, now + idle), "email_verified": verified,
            "notice": None if verified else UNVERIFIED_NOTICE}


def attempt_staff_login(session: Session, *, login: str, password: str, client_ip: str | None,
                        idle: dt.timedelta, absolute: dt.timedelta, throttle: Throttle) -> dict[str, Any]:
    """As :func:`attempt_login`, for the back office realm."""
    account = login.strip().lower()
    check_throttle(session, realm="staff", account=account, client_ip=client_ip, throttle=throttle)
    member = session.execute(select(staff).where(func.lower(staff.c.email) == account)).first()
    ok = verify_password(member.password_hash if member is not None else DUMMY_HASH, password)
    if member is None or not member.active or not ok:
        record_login(session, realm="staff", account=account, customer_id=None, client_ip=client_ip,
                     success=False, reason="bad_credentials")
        raise after_commit(Unauthenticated(BAD_STAFF_LOGIN))
    record_login(session, realm="staff", account=account, customer_id=None, client_ip=client_ip,
                 success=True, reason="ok")
    token = STAFF_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(staff_sessions.insert().values(
        id=str(uuid.uuid4()), token_hash=hash_token(token), staff_id=member.id, client_ip=client_ip,
        created_at=now, last_seen_at=now, expires_at=now + absolute))
    return {"token": token, "token_type": "Bearer", "staff_id": member.id, "roles": list(member.roles),
            "expires_at": min(now + absolute, now + idle)}

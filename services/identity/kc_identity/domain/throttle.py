"""Failed-attempt limits: every failed login or password re-check is recorded and counted
per account and per client address within a window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from kc_common.db import after_commit, as_utc, utcnow
from kc_common.errors import TooManyRequests, ValidationFailed
from kc_identity.domain.common import retry_seconds, verify_password
from kc_identity.models import login_events


class Throttle:
    """Failed-attempt limits (config): per account and per client address within a window."""

    def __init__(self, per_account: int = 5, per_address: int = 30,
                 window: dt.timedelta = dt.timedelta(minutes=15)) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window


def counting_start(since: dt.datetime, last_ok: dt.datetime | None) -> dt.datetime:
    """Failures count within the window, and only after the last success (a right password
    clears the account's count)."""
    return max(since, as_utc(last_ok)) if last_ok is not None else since


def blocked_until(failures: Sequence[dt.datetime], limit: int, window: dt.timedelta) -> dt.datetime | None:
    """The instant a limit of ``limit`` failures per ``window`` lets the next attempt through,
    or None when it does not block now. ``failures``: the counted failures' instants, oldest
    first; the block lasts until the oldest failure that keeps the count at the limit leaves
    the window."""
    if len(failures) < limit:
        return None
    return as_utc(failures[len(failures) - limit]) + window


def check_throttle(session: Session, *, realm: str, account: str, client_ip: str | None,
                   throttle: Throttle) -> None:
    """Raise TooManyRequests (with retry_after) when the account or address has failed too often."""
    now = utcnow()
    since = now - throttle.window
    if account is not None:
        last_ok = session.execute(select(func.max(login_events.c.at)).where(
            login_events.c.realm == realm, login_events.c.account == account,
            login_events.c.success.is_(True))).scalar()
        start = counting_start(since, last_ok)
        failures = session.execute(select(login_events.c.at).where(
            login_events.c.realm == realm, login_events.c.account == account,
            login_events.c.success.is_(False), login_events.c.at > start)
            .order_by(login_events.c.at)).scalars().all()
        until = blocked_until(failures, throttle.per_account, throttle.window)
        if until is not None:
            raise TooManyRequests("Zu viele fehlgeschlagene Anmeldeversuche für dieses Konto. "
                                  "Bitte warten Sie einige Minuten.",
                                  {"retry_after": retry_seconds(until - now)})
    if client_ip:
        failures = session.execute(select(login_events.c.at).where(
            login_events.c.client_ip == client_ip, login_events.c.success.is_(False),
            login_events.c.at > since).order_by(login_events.c.at)).scalars().all()
        until = blocked_until(failures, throttle.per_address, throttle.window)
        if until is not None:
            raise TooManyRequests("Zu viele fehlgeschlagene Anmeldeversuche von Ihrer Adresse. "
                                  "Bitte warten Sie einige Minuten.",
                                  {"retry_after": retry_seconds(until - now)})


def record_login(session: Session, *, realm: str, account: str, customer_id: int | None,
                 client_ip: str | None, success: bool, reason: str | None) -> None:
    session.execute(login_events.insert().values(
        realm=realm, account=str(account)[:254], customer_id=customer_id, client_ip=client_ip,
        success=success, reason=reason, at=utcnow()))


def reauthenticate(session: Session, row: Row[Any], password: str, *, client_ip: str | None,
                   throttle: Throttle) -> None:
    """Check the service password again (sensitive changes). A wrong one is recorded as a failed
    attempt and throttled like a login: the error is raised after the commit."""
    check_throttle(session, realm="customer", account=str(row.id), client_ip=None, throttle=throttle)
    if not verify_password(row.password_hash, password or ""):
        record_login(session, realm="customer", account=str(row.id), customer_id=row.id,
                     client_ip=client_ip, success=False, reason="reauth_failed")
        raise after_commit(ValidationFailed("Das Service-Passwort ist falsch.",
                                            fields={"password": ["Das Service-Passwort ist falsch."]}))

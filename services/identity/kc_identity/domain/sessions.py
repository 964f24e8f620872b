"""Sessions of both realms: authenticating a token (idle and absolute expiry, the IP
whitelist), listing and ending sessions, the login history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, as_utc, utcnow
from kc_common.errors import Forbidden, NotFound, Unauthenticated
from kc_identity import netlist
from kc_identity.domain.common import (
    CUSTOMER_TOKEN_PREFIX,
    STAFF_TOKEN_PREFIX,
    hash_token,
)
from kc_identity.models import customers, login_events, sessions, staff, staff_sessions


def whitelist_message(client_ip: str | None) -> str:
    return (f"Der Zugang von Ihrer IP-Adresse ({client_ip or 'unbekannt'}) ist durch die "
            f"IP-Whitelist dieses Kundenkontos nicht erlaubt.")


def session_open(row: Any, idle: dt.timedelta, now: dt.datetime) -> bool:
    """A session (either realm) counts until it is ended, reaches its absolute expiry
    (``expires_at``), or was not used for ``idle``."""
    return (row.ended_at is None and as_utc(row.expires_at) > now
            and as_utc(row.last_seen_at) + idle > now)


def answer_lifetime(expires_at: dt.datetime, last_seen: dt.datetime, idle: dt.timedelta,
                    now: dt.datetime) -> float:
    """Seconds an ``authenticate`` answer stays true unless the session is ended: until the
    absolute expiry or the idle limit, whichever comes first (never negative)."""
    return max(0.0, (min(as_utc(expires_at), as_utc(last_seen) + idle) - now).total_seconds())


def authenticate(session: Session, *, token: str, idle: dt.timedelta,
                 client_ip: str | None = None) -> dict[str, Any]:
    """The principal behind a token (either realm); idle and absolute expiry enforced,
    and for customers the IP whitelist against the caller's address."""
    table = sessions if token.startswith(CUSTOMER_TOKEN_PREFIX) else \
        staff_sessions if token.startswith(STAFF_TOKEN_PREFIX) else None
    if table is None:
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    row = session.execute(select(table).where(table.c.token_hash == hash_token(token))).first()
    now = utcnow()
    if row is None or not session_open(row, idle, now):
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    if table is sessions:
        whitelist, verified_at, closing_at = session.execute(
            select(customers.c.ip_whitelist, customers.c.email_verified_at, customers.c.closure_requested_at)
            .where(customers.c.id == row.customer_id)).one()
        if not netlist.allows(whitelist, client_ip):
            raise Forbidden(whitelist_message(client_ip), {"reason": "ip_not_allowed", "client_ip": client_ip})
    last_seen = as_utc(row.last_seen_at)
    if now - last_seen > dt.timedelta(seconds=30):  # avoid a write per request
        session.execute(update(table).where(table.c.id == row.id).values(last_seen_at=now))
        last_seen = now
    # How long this answer stays true unless the session is ended (``session_ended``):
    # the gateway caches it no longer than this.
    expires_in = answer_lifetime(row.expires_at, last_seen, idle, now)
    if table is sessions:
        return {"kind": "customer", "customer_id": row.customer_id, "session_id": row.id,
                "email_verified": verified_at is not None, "expires_in": expires_in,
                "closing": closing_at is not None}
    member = session.execute(select(staff).where(staff.c.id == row.staff_id)).first()
    if member is None or not member.active:
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    return {"kind": "staff", "staff_id": member.id, "roles": list(member.roles), "session_id": row.id,
            "expires_in": expires_in}


def sessions_changed(uow: UnitOfWork, *, session_id: str | None = None, customer_id: int | None = None,
                     staff_id: str | None = None) -> None:
    """Tell every gateway (event ``session_ended``) that what ``authenticate`` answered for
    this session, or for every session of this customer or staff member, may no longer hold:
    a session ended, or the whitelist or the e-mail confirmation changed. Gateways drop
    their cached answers at once. Call in the transaction that made the change."""
    uow.emit("session_ended", {"session_id": session_id, "customer_id": customer_id,
                               "staff_id": staff_id})


def end_session(session: Session, session_id: str | None) -> None:
    """End a session of either realm."""
    for table in (sessions, staff_sessions):
        session.execute(update(table).where(table.c.id == session_id,
                                            table.c.ended_at.is_(None)).values(ended_at=utcnow()))


def _active(now: dt.datetime, idle: dt.timedelta) -> Any:
    return and_(sessions.c.ended_at.is_(None), sessions.c.expires_at > now,
                sessions.c.last_seen_at > now - idle)


def list_sessions(session: Session, customer_id: int, current_session_id: str | None,
                  idle: dt.timedelta) -> list[dict[str, Any]]:
    now = utcnow()
    rows = session.execute(select(sessions).where(sessions.c.customer_id == customer_id, _active(now, idle))
                           .order_by(sessions.c.created_at.desc())).all()
    return [{"id": r.id, "created_at": r.created_at, "last_seen_at": r.last_seen_at,
             "expires_at": min(as_utc(r.expires_at), as_utc(r.last_seen_at) + idle),
             "client_ip": r.client_ip, "current": r.id == current_session_id} for r in rows]


def end_customer_session(session: Session, customer_id: int, session_id: str | None) -> None:
    """End one of the customer's own sessions; another customer's is 404."""
    row = session.execute(select(sessions.c.id).where(sessions.c.id == session_id,
                                                      sessions.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound("Sitzung nicht gefunden.")
    end_session(session, session_id)


def end_other_sessions(session: Session, customer_id: int, keep_session_id: str | None) -> Any:
    return session.execute(update(sessions).where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
        sessions.c.customer_id == customer_id, sessions.c.ended_at.is_(None),
        sessions.c.id != (keep_session_id or "")).values(ended_at=utcnow())).rowcount


def recent_logins(session: Session, customer_id: int, page: int, per_page: int) -> dict[str, Any]:
    base = select(login_events).where(login_events.c.realm == "customer",
                                      login_events.c.customer_id == customer_id)
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar()
    rows = session.execute(base.order_by(login_events.c.at.desc(), login_events.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [{"at": r.at, "client_ip": r.client_ip, "success": r.success, "reason": r.reason}
                      for r in rows], "total": total, "page": page, "per_page": per_page}

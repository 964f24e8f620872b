"""Two-factor login: TOTP (primitives in ``kc_identity.twofactor``) and recovery codes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.orm import Session

from kc_common.db import utcnow
from kc_common.errors import Conflict, Unprocessable, ValidationFailed
from kc_identity import twofactor
from kc_identity.domain.customers import get_customer_row
from kc_identity.domain.throttle import Throttle, reauthenticate
from kc_identity.models import customers, recovery_codes
from kc_identity.vault import Vault


def second_factor_ok(session: Session, row: Row[Any], otp: str | None, vault: Vault) -> bool:
    """A TOTP code (once per time step) or an unused recovery code (used up now)."""
    step = twofactor.match_totp(vault.decrypt(row.totp_secret_enc), otp, row.totp_last_step)
    if step is not None:
        done = session.execute(update(customers).where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
            customers.c.id == row.id,
            or_(customers.c.totp_last_step.is_(None), customers.c.totp_last_step < step))
            .values(totp_last_step=step)).rowcount
        return done == 1
    used = session.execute(update(recovery_codes).where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
        recovery_codes.c.customer_id == row.id, recovery_codes.c.used_at.is_(None),
        recovery_codes.c.code_hash == twofactor.hash_recovery_code(otp)).values(used_at=utcnow())).rowcount
    return used >= 1


def two_factor_status(session: Session, customer_id: int) -> dict[str, Any]:
    row = get_customer_row(session, customer_id)
    left = session.execute(select(func.count()).select_from(recovery_codes).where(
        recovery_codes.c.customer_id == customer_id, recovery_codes.c.used_at.is_(None))).scalar()
    return {"enabled": row.totp_secret_enc is not None, "enabled_at": row.totp_enabled_at,
            "setup_pending": row.totp_pending_enc is not None,
            "recovery_codes_left": left if row.totp_secret_enc is not None else 0}


def two_factor_setup(session: Session, customer_id: int, password: str, *, vault: Vault,
                     client_ip: str | None, throttle: Throttle) -> dict[str, Any]:
    """A new secret to scan (confirmed by :func:`two_factor_enable`)."""
    row = get_customer_row(session, customer_id, lock=True)
    reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    if row.totp_secret_enc is not None:
        raise Conflict("Die Zwei-Faktor-Anmeldung ist bereits aktiv. Bitte deaktivieren Sie sie zuerst.")
    secret = twofactor.new_secret()
    session.execute(update(customers).where(customers.c.id == customer_id)
                    .values(totp_pending_enc=vault.encrypt(secret)))
    return {"secret": secret, "otpauth_uri": twofactor.provisioning_uri(secret, f"{row.id} ({row.email})")}


def _new_recovery_codes(session: Session, customer_id: int) -> list[str]:
    session.execute(recovery_codes.delete().where(recovery_codes.c.customer_id == customer_id))
    codes = twofactor.new_recovery_codes()
    session.execute(recovery_codes.insert(), [{"customer_id": customer_id,
                                               "code_hash": twofactor.hash_recovery_code(c)} for c in codes])
    return codes


def two_factor_enable(session: Session, customer_id: int, code: str, *, vault: Vault) -> dict[str, Any]:
    row = get_customer_row(session, customer_id, lock=True)
    if row.totp_pending_enc is None:
        raise Unprocessable("Bitte richten Sie die Zwei-Faktor-Anmeldung zuerst ein.")
    secret = vault.decrypt(row.totp_pending_enc)
    step = twofactor.match_totp(secret, code)
    if step is None:
        raise ValidationFailed("Der Bestätigungscode ist falsch.",
                               fields={"code": ["Der Bestätigungscode ist falsch. Bitte prüfen Sie die Uhrzeit "
                                                "Ihres Geräts."]})
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        totp_secret_enc=row.totp_pending_enc, totp_pending_enc=None, totp_enabled_at=utcnow(),
        totp_last_step=step))
    return {"recovery_codes": _new_recovery_codes(session, customer_id)}


def two_factor_disable(session: Session, customer_id: int, password: str, *, client_ip: str | None,
                       throttle: Throttle) -> None:
    row = get_customer_row(session, customer_id, lock=True)
    reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        totp_secret_enc=None, totp_pending_enc=None, totp_enabled_at=None, totp_last_step=None))
    session.execute(recovery_codes.delete().where(recovery_codes.c.customer_id == customer_id))


def two_factor_new_codes(session: Session, customer_id: int, password: str, *, client_ip: str | None,
                         throttle: Throttle) -> dict[str, Any]:
    row = get_customer_row(session, customer_id, lock=True)
    reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    if row.totp_secret_enc is None:
        raise Unprocessable("Die Zwei-Faktor-Anmeldung ist nicht aktiv.")
    return {"recovery_codes": _new_recovery_codes(session, customer_id)}

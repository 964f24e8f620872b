"""A customer's account lifecycle, free of nameko: public sign-up with double opt-in,
customers created by staff, "Passwort vergessen", confirmed e-mail changes.

Every link is a single-use token that expires; only its SHA-256 is stored
(``account_tokens``). The plain token travels to identity's own mail handler inside the
event, encrypted with the service's vault (Fernet), and exists in clear only in the mail.

Public requests answer alike whether or not an account exists (the mail to the address
says what applies), and are throttled per subject (e-mail / login) and per client
address (``account_requests``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, as_utc, utcnow
from kc_common.errors import Conflict, TooManyRequests, ValidationFailed
from kc_identity import address, policy
from kc_identity.domain.common import hash_password, hash_token, retry_seconds
from kc_identity.domain.customers import (
    address_view,
    create_customer,
    customer_view,
    find_customer_by_login,
    get_customer_row,
)
from kc_identity.domain.sessions import end_other_sessions, sessions_changed
from kc_identity.models import account_requests, account_tokens, customers
from kc_identity.vault import Vault

PASSWORD_RESET, SET_PASSWORD = "password_reset", "set_password"
VERIFY_EMAIL, CHANGE_EMAIL = "verify_email", "change_email"
BAD_LINK = "Dieser Link ist ungültig, abgelaufen oder wurde bereits verwendet. Bitte fordern Sie einen neuen an."
PRIVATE, COMPANY = "private", "company"

RESET_ACCEPTED = ("Wenn zu diesen Angaben ein Kundenkonto besteht, haben wir an die hinterlegte "
                  "E-Mail-Adresse einen Link zum Festlegen eines neuen Passworts gesendet. "
                  "Der Link ist nur kurze Zeit gültig.")
SIGNUP_ACCEPTED = ("Vielen Dank für Ihre Registrierung. Wir haben Ihnen eine E-Mail gesendet: Bitte "
                   "bestätigen Sie Ihre E-Mail-Adresse über den Link darin. Erst danach können Sie "
                   "bestellen und bezahlen.")


@dataclasses.dataclass(frozen=True)
class Limits:
    """Settings (config) of the account lifecycle."""
    window: dt.timedelta = dt.timedelta(minutes=60)
    signup_per_email: int = 3
    signup_per_address: int = 10
    reset_per_login: int = 5
    reset_per_address: int = 20
    reset_mails_per_account: int = 3
    reset_ttl: dt.timedelta = dt.timedelta(minutes=30)
    email_ttl: dt.timedelta = dt.timedelta(hours=48)
    set_password_ttl: dt.timedelta = dt.timedelta(hours=72)

    def ttl(self, purpose: str) -> dt.timedelta:
        return {PASSWORD_RESET: self.reset_ttl, SET_PASSWORD: self.set_password_ttl}.get(purpose, self.email_ttl)


# --- throttle of public requests -----------------------------------------------------------

def _throttle(session: Session, *, kind: str, subject: str, client_ip: str | None, per_subject: int,
              per_address: int, window: dt.timedelta) -> None:
    """429 when ``subject`` or ``client_ip`` asked too often within ``window``; else record it."""
    now = utcnow()
    since = now - window
    checks = [(account_requests.c.subject == subject, per_subject,
               "Zu viele Anfragen für diese Angaben. Bitte warten Sie etwas.")]
    if client_ip:
        checks.append((account_requests.c.client_ip == client_ip, per_address,
                       "Zu viele Anfragen von Ihrer Adresse. Bitte warten Sie etwas."))
    for cond, limit, message in checks:
        times = session.execute(select(account_requests.c.at).where(
            account_requests.c.kind == kind, cond, account_requests.c.at > since)
            .order_by(account_requests.c.at)).scalars().all()
        if len(times) >= limit:
            until = as_utc(times[len(times) - limit]) + window
            raise TooManyRequests(message, {"retry_after": retry_seconds(until - now)})
    session.execute(account_requests.insert().values(kind=kind, subject=subject[:254],
                                                     client_ip=client_ip, at=now))


# --- single-use links ------------------------------------------------------------------------

def issue_link(uow: UnitOfWork, *, purpose: str, customer_id: int, email: str, limits: Limits, vault: Vault,
               client_ip: str | None = None) -> str:
    """A new link for ``purpose`` (earlier unused ones of that purpose end); emits
    ``account_link_issued`` whose handler mails it to ``email``."""
    session = uow.session
    now = utcnow()
    session.execute(update(account_tokens).where(
        account_tokens.c.customer_id == customer_id, account_tokens.c.purpose == purpose,
        account_tokens.c.used_at.is_(None)).values(used_at=now))
    token = secrets.token_urlsafe(32)
    token_id = str(uuid.uuid4())
    expires_at = now + limits.ttl(purpose)
    session.execute(account_tokens.insert().values(
        id=token_id, token_hash=hash_token(token), purpose=purpose, customer_id=customer_id,
        email=email, created_at=now, expires_at=expires_at))
    uow.emit("account_link_issued", {"purpose": purpose, "customer_id": customer_id, "email": email,
                                     "token_id": token_id, "token_enc": vault.encrypt(token),
                                     "expires_at": expires_at, "client_ip": client_ip})
    return token_id


def _take(session: Session, token: str, purposes: Sequence[str]) -> Row[Any]:
    """The unused, unexpired token row (locked) for one of ``purposes``, or 400 on ``token``."""
    row = None
    if isinstance(token, str) and 20 <= len(token) <= 100:
        row = session.execute(select(account_tokens).where(
            account_tokens.c.token_hash == hash_token(token)).with_for_update()).first()
    if row is None or row.purpose not in purposes or row.used_at is not None \
            or as_utc(row.expires_at) <= utcnow():
        raise ValidationFailed(BAD_LINK, fields={"token": [BAD_LINK]})
    return row


def _use(session: Session, row: Row[Any]) -> None:
    session.execute(update(account_tokens).where(account_tokens.c.id == row.id).values(used_at=utcnow()))


# --- Passwort vergessen ----------------------------------------------------------------------

def request_password_reset(uow: UnitOfWork, *, login: str, client_ip: str | None, limits: Limits,
                           vault: Vault) -> None:
    """Mail a reset link when ``login`` (Kundennummer or e-mail) is a customer. The caller
    answers the same either way; a known account gets at most ``reset_mails_per_account``
    mails per window (silently)."""
    session = uow.session
    key = " ".join(login.split()).lower()
    _throttle(session, kind=PASSWORD_RESET, subject=key, client_ip=client_ip,
              per_subject=limits.reset_per_login, per_address=limits.reset_per_address,
              window=limits.window)
    row = find_customer_by_login(session, key)
    if row is None:
        return
    sent = session.execute(select(func.count()).select_from(account_tokens).where(
        account_tokens.c.customer_id == row.id, account_tokens.c.purpose == PASSWORD_RESET,
        account_tokens.c.created_at > utcnow() - limits.window)).scalar()
    if sent >= limits.reset_mails_per_account:  # type: ignore[operator]  # a count is never NULL
        return
    issue_link(uow, purpose=PASSWORD_RESET, customer_id=row.id, email=row.email, limits=limits,
               vault=vault, client_ip=client_ip)


def set_password_by_link(uow: UnitOfWork, data: dict[str, Any], *, client_ip: str | None) -> None:
    """A new service password through a reset (or staff's set-password) link: every session
    ends, the notice mail goes out (``password_changed``); two-factor login stays as it is."""
    session = uow.session
    row = _take(session, data["token"], (PASSWORD_RESET, SET_PASSWORD))
    customer = get_customer_row(session, row.customer_id, lock=True)
    errors = {}
    problems = policy.service_password_problems(data["new_password"], customer_id=customer.id,
                                                email=customer.email)
    if problems:
        errors["new_password"] = problems
    if data["new_password"] != data["new_password_repeat"]:
        errors["new_password_repeat"] = ["Die Wiederholung stimmt nicht mit dem neuen Passwort überein."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    now = utcnow()
    values = {"password_hash": hash_password(data["new_password"]), "password_changed_at": now,
              "updated_at": now}
    if customer.email_verified_at is None and row.email == customer.email:
        values["email_verified_at"] = now  # the link reached this mailbox
    session.execute(update(customers).where(customers.c.id == customer.id).values(**values))
    session.execute(update(account_tokens).where(
        account_tokens.c.customer_id == customer.id,
        account_tokens.c.purpose.in_((PASSWORD_RESET, SET_PASSWORD)),
        account_tokens.c.used_at.is_(None)).values(used_at=now))
    ended = end_other_sessions(session, customer.id, None)
    sessions_changed(uow, customer_id=customer.id)
    uow.emit("password_changed", {"customer_id": customer.id, "changed_at": now, "client_ip": client_ip,
                                  "sessions_ended": ended, "by_link": True})


# --- sign-up and staff-created customers -----------------------------------------------------

def clean_customer(data: dict[str, Any], *, vat_valid: bool | None = None) -> dict[str, Any]:
    """Validate a new customer's data like Adressdaten, plus the kind (private person or
    company). ``vat_valid``: the VIES answer asked before the transaction (False refuses).
    Returns the cleaned fields or raises ValidationFailed naming every bad field."""
    errors = {}
    kind = data.get("customer_type") or PRIVATE
    if kind not in (PRIVATE, COMPANY):
        errors["customer_type"] = ["Bitte wählen Sie Privatperson (private) oder Firma (company)."]
    fields = {f: data.get(f) for f in address.FIELDS if f in data}
    if kind == PRIVATE:
        for field in ("company", "vat_id"):
            if (fields.get(field) or "").strip():
                errors[field] = ["Nur bei Firmen: Bitte wählen Sie als Kundenart „Firma“."]
            fields[field] = None
    required = address.REQUIRED + (("company",) if kind == COMPANY else ())
    cleaned, field_errors = address.clean(fields, required=required)
    for field, messages in field_errors.items():
        errors.setdefault(field, []).extend(messages)
    if kind == COMPANY and cleaned.get("vat_id") and "vat_id" not in errors and vat_valid is False:
        errors["vat_id"] = ["Diese USt-IdNr. ist laut EU-Abfrage (VIES) nicht gültig."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    cleaned["company"] = cleaned.get("company") or ""
    cleaned.pop("customer_type", None)
    return cleaned


def vat_id_to_check(data: dict[str, Any]) -> str | None:
    """The normalised VAT id of a company sign-up worth asking VIES about, or None."""
    if data.get("customer_type") != COMPANY or not (data.get("vat_id") or "").strip():
        return None
    try:
        return address.vat_id(" ".join(str(data["vat_id"]).split()))
    except ValueError:
        return None


def signup(uow: UnitOfWork, data: dict[str, Any], *, client_ip: str | None, limits: Limits, vault: Vault,
           terms: dict[str, Any], vat_valid: bool | None = None) -> None:
    """Public registration. ``terms``: the current Unternehmer-AGB ``{"version", ...}``.

    Valid input always gets the same answer: a new customer (the next Kundennummer, not yet
    verified) with a verification link by mail, or — when the e-mail is already registered —
    only a mail to that address saying so. The password is hashed either way (same time).
    """
    session = uow.session
    errors: dict[str, Any] = {}
    cleaned: Any
    try:
        cleaned = clean_customer(data, vat_valid=vat_valid)
    except ValidationFailed as exc:
        errors.update(exc.details.get("fields") or {})
        cleaned = None
    email: Any = (cleaned or {}).get("email")
    problems = policy.service_password_problems(data["password"], email=email or data.get("email"))
    if problems:
        errors["password"] = problems
    if data["password"] != data["password_repeat"]:
        errors["password_repeat"] = ["Die Wiederholung stimmt nicht mit dem Passwort überein."]
    if data.get("accept_terms") is not True:
        errors["accept_terms"] = ["Bitte akzeptieren Sie die Allgemeinen Geschäftsbedingungen für Unternehmer."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    if str(data.get("terms_version")) != str(terms["version"]):
        raise Conflict("Es gibt eine neue Fassung der Unternehmer-AGB. Bitte lesen und akzeptieren Sie die "
                       "aktuelle Version.", {"reason": "new_version", "current_version": str(terms["version"])})
    _throttle(session, kind="signup", subject=email, client_ip=client_ip, per_subject=limits.signup_per_email,
              per_address=limits.signup_per_address, window=limits.window)
    password_hash = hash_password(data["password"])
    existing: Any = find_customer_by_login(session, email)
    if existing is None:
        now = utcnow()
        try:
            with session.begin_nested():  # a concurrent sign-up with this e-mail loses here
                customer_id = create_customer(
                    uow, password_hash=password_hash, email_verified=False, terms_version=str(terms["version"]),
                    terms_accepted_at=now, **cleaned)
        except IntegrityError:
            existing = find_customer_by_login(session, email)
        else:
            issue_link(uow, purpose=VERIFY_EMAIL, customer_id=customer_id, email=email, limits=limits,
                       vault=vault, client_ip=client_ip)
            return
    uow.emit("signup_duplicate", {"customer_id": existing.id, "email": existing.email, "client_ip": client_ip,
                                  "at": utcnow()})


def resend_verification(uow: UnitOfWork, customer_id: int, *, limits: Limits, vault: Vault,
                        client_ip: str | None) -> None:
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    if row.email_verified_at is not None:
        raise Conflict("Ihre E-Mail-Adresse ist bereits bestätigt.", {"reason": "already_verified"})
    _throttle(session, kind="verify_resend", subject=str(customer_id), client_ip=None,
              per_subject=limits.signup_per_email, per_address=0, window=limits.window)
    issue_link(uow, purpose=VERIFY_EMAIL, customer_id=row.id, email=row.email, limits=limits, vault=vault,
               client_ip=client_ip)


def staff_create(uow: UnitOfWork, data: dict[str, Any], *, limits: Limits, vault: Vault,
                 vat_valid: bool | None = None) -> dict[str, Any]:
    """A customer taken on the phone: same validation, no password yet — the customer gets a
    link to set it (which also confirms the e-mail address)."""
    session = uow.session
    cleaned = clean_customer(data, vat_valid=vat_valid)
    taken = ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields={"email": [
        "Diese E-Mail-Adresse ist bereits einem anderen Kundenkonto zugeordnet."]})
    if find_customer_by_login(session, cleaned["email"]) is not None:
        raise taken
    try:
        with session.begin_nested():
            customer_id = create_customer(
                uow, password_hash=hash_password(secrets.token_urlsafe(32)), email_verified=False,
                **cleaned)
    except IntegrityError:
        raise taken from None
    issue_link(uow, purpose=SET_PASSWORD, customer_id=customer_id, email=cleaned["email"], limits=limits,
               vault=vault)
    return address_view(get_customer_row(session, customer_id))


# --- e-mail confirmation (sign-up and change) ------------------------------------------------

def confirm_email(uow: UnitOfWork, token: str, *, client_ip: str | None) -> dict[str, Any]:
    """Confirm a verification (sign-up) or an e-mail change link."""
    session = uow.session
    row = _take(session, token, (VERIFY_EMAIL, CHANGE_EMAIL))
    customer = get_customer_row(session, row.customer_id, lock=True)
    now = utcnow()
    if row.purpose == VERIFY_EMAIL:
        if row.email != customer.email:  # the address changed since the link was sent
            raise ValidationFailed(BAD_LINK, fields={"token": [BAD_LINK]})
        _use(session, row)
        if customer.email_verified_at is None:
            session.execute(update(customers).where(customers.c.id == customer.id)
                            .values(email_verified_at=now))
            sessions_changed(uow, customer_id=customer.id)  # email_verified now true
        return {"purpose": row.purpose, "email": customer.email, "customer_id": customer.id}
    taken = session.execute(select(customers.c.id).where(
        func.lower(customers.c.email) == row.email, customers.c.id != customer.id)).first()
    if taken:
        raise Conflict("Diese E-Mail-Adresse ist inzwischen einem anderen Kundenkonto zugeordnet.",
                       {"reason": "email_taken"})
    _use(session, row)
    try:
        with session.begin_nested():
            session.execute(update(customers).where(customers.c.id == customer.id).values(
                email=row.email, email_verified_at=now, version=customer.version + 1, updated_at=now))
    except IntegrityError:
        raise Conflict("Diese E-Mail-Adresse ist inzwischen einem anderen Kundenkonto zugeordnet.",
                       {"reason": "email_taken"}) from None
    sessions_changed(uow, customer_id=customer.id)
    uow.emit("email_changed", {"customer_id": customer.id, "old_email": customer.email, "new_email": row.email,
                               "changed_at": now, "client_ip": client_ip, "by_staff": False})
    uow.emit("customer_updated", customer_view(get_customer_row(session, customer.id)))
    return {"purpose": row.purpose, "email": row.email, "customer_id": customer.id}


def pending_email(session: Session, customer_id: int) -> str | None:
    """The new address of an e-mail change that waits for its confirmation, or None."""
    return session.execute(select(account_tokens.c.email).where(
        account_tokens.c.customer_id == customer_id, account_tokens.c.purpose == CHANGE_EMAIL,
        account_tokens.c.used_at.is_(None), account_tokens.c.expires_at > utcnow())
        .order_by(account_tokens.c.created_at.desc()).limit(1)).scalar()


# --- retention of personal logs ----------------------------------------------------------

def prune(session: Session, *, login_events_days: int, phone_checks_days: int,
          now: dt.datetime | None = None) -> dict[str, int]:
    """Delete what is no longer needed: login attempts and telephone password checks older than
    their retention, throttle records older than a day, links used or expired 30 days ago.
    Returns the number of rows deleted per table."""
    from kc_identity.models import login_events, phone_password_checks
    now = now or utcnow()
    done = {
        "login_events": session.execute(login_events.delete().where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
            login_events.c.at < now - dt.timedelta(days=login_events_days))).rowcount,
        "phone_password_checks": session.execute(phone_password_checks.delete().where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
            phone_password_checks.c.at < now - dt.timedelta(days=phone_checks_days))).rowcount,
        "account_requests": session.execute(account_requests.delete().where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
            account_requests.c.at < now - dt.timedelta(days=1))).rowcount,
        "account_tokens": session.execute(account_tokens.delete().where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
            account_tokens.c.expires_at < now - dt.timedelta(days=30))).rowcount,
    }
    return done

"""identity's rules, free of nameko: customers and address data, passwords, logins and
sessions, IP whitelist, contact persons, notification preferences, the AV agreement, staff."""
import datetime as dt
import hashlib
import math
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from kc_common.db import as_utc, next_in_series, utcnow
from kc_common.errors import (Conflict, Forbidden, NotFound, TooManyRequests, Unauthenticated,
                              Unprocessable, ValidationFailed)
from kc_identity import address, av, netlist, policy, twofactor
from kc_identity.models import (av_signatures, contacts, counters, customers, login_events,
                                notification_preferences, phone_password_checks,
                                recovery_codes, sessions, staff, staff_sessions)

CUSTOMER_TOKEN_PREFIX = "kcc_"   # the two realms' tokens can never be mistaken
STAFF_TOKEN_PREFIX = "kcs_"
FIRST_CUSTOMER_NUMBER = 100001
_hasher = PasswordHasher()  # argon2id
# Verified when the login is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

BAD_LOGIN = "Kundennummer/E-Mail oder Passwort ist falsch."
BAD_STAFF_LOGIN = "E-Mail oder Passwort ist falsch."
UNVERIFIED_NOTICE = ("Bitte bestätigen Sie Ihre E-Mail-Adresse über den Link in unserer E-Mail. "
                     "Bis dahin können Sie nicht bestellen oder bezahlen.")


class Throttle:
    """Failed-attempt limits (config): per account and per client address within a window."""

    def __init__(self, per_account=5, per_address=30, window=dt.timedelta(minutes=15)):
        self.per_account = per_account
        self.per_address = per_address
        self.window = window


def hash_password(password):
    return _hasher.hash(password)


def verify_password(password_hash, password):
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def next_number(session, series, first):
    """Next value of a gap-free series (customer numbers are never reused)."""
    return next_in_series(session, counters, series, first)

# --- customers and address data ---------------------------------------------------------

def create_customer(uow, *, email, last_name, first_name, password=None, password_hash=None, company="",
                    email_verified=True, terms_version=None, terms_accepted_at=None, **fields):
    """A new customer (Kundennummer from the counter); publishes ``customer_updated``.

    ``email_verified=False`` for a sign-up (double opt-in pending) or a customer created by staff."""
    session = uow.session
    number = next_number(session, "customer", FIRST_CUSTOMER_NUMBER)
    now = utcnow()
    extra = {k: fields[k] for k in ("street", "zip", "city", "country", "phone", "fax", "mobile",
                                    "vat_id") if fields.get(k) is not None}
    session.execute(customers.insert().values(
        id=number, email=email.lower(), company=company, last_name=last_name,
        first_name=first_name, password_hash=password_hash or hash_password(password),
        created_at=now, updated_at=now, email_verified_at=now if email_verified else None,
        terms_version=terms_version, terms_accepted_at=terms_accepted_at, **extra))
    uow.emit("customer_updated", customer_view(get_customer_row(session, number)))
    return number


def get_customer_row(session, customer_id, *, lock=False):
    stmt = select(customers).where(customers.c.id == customer_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound("Kunde nicht gefunden.")
    return row


def find_customer_by_login(session, login):
    login = login.strip()
    if login.isdigit():
        if len(login) > 18:
            return None
        cond = customers.c.id == int(login)
    else:
        cond = func.lower(customers.c.email) == login.lower()
    return session.execute(select(customers).where(cond)).first()


def customer_view(row):
    """The ``customer_updated`` fields (docs/contracts.md) of a customer row."""
    data = row._mapping
    return {"customer_id": row.id, "company": row.company, "first_name": row.first_name,
            "last_name": row.last_name, "email": row.email,
            **{k: data.get(k) for k in ("street", "zip", "city", "country", "phone", "fax",
                                        "mobile", "vat_id")},
            "is_business": bool(row.company)}


def address_view(row):
    """The Adressdaten form: the contract fields plus the optimistic-lock version."""
    return {**customer_view(row), "version": row.version, "updated_at": row.updated_at,
            "email_verified": row.email_verified_at is not None}


COMPANY_CHANGE_REFUSED = ("Der Firmenname kann hier nicht geändert werden: dafür ist ein Inhaberwechsel "
                          "nötig. Das Formular finden Sie unter „Meine Dokumente → Inhaberwechsel“.")


def update_address(uow, customer_id, data, *, staff=False, client_ip=None, request_email_change=None):
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
        request_email_change(new_email)
    if not changes:
        return address_view(row)
    try:
        with session.begin_nested():  # a concurrent change to the same e-mail loses here, not with a 500
            session.execute(update(customers).where(customers.c.id == customer_id).values(
                **changes, version=row.version + 1, updated_at=utcnow()))
    except IntegrityError:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields={"email": [
            "Diese E-Mail-Adresse ist bereits einem anderen Kundenkonto zugeordnet."]})
    if "email" in changes:  # security notice to the address that was valid until now
        sessions_changed(uow, customer_id=customer_id)
        uow.emit("email_changed", {"customer_id": customer_id, "old_email": old_email,
                                   "new_email": changes["email"], "changed_at": utcnow(),
                                   "client_ip": client_ip, "by_staff": staff})
    row = get_customer_row(session, customer_id)
    uow.emit("customer_updated", customer_view(row))
    return address_view(row)


# --- login, sessions, throttling ----------------------------------------------------------

def _seconds(delta):
    return max(1, math.ceil(delta.total_seconds()))


def check_throttle(session, *, realm, account, client_ip, throttle):
    """Raise TooManyRequests (with retry_after) when the account or address has failed too often."""
    now = utcnow()
    since = now - throttle.window
    if account is not None:
        last_ok = session.execute(select(func.max(login_events.c.at)).where(
            login_events.c.realm == realm, login_events.c.account == account,
            login_events.c.success.is_(True))).scalar()
        start = max(since, as_utc(last_ok)) if last_ok is not None else since
        failures = session.execute(select(login_events.c.at).where(
            login_events.c.realm == realm, login_events.c.account == account,
            login_events.c.success.is_(False), login_events.c.at > start)
            .order_by(login_events.c.at)).scalars().all()
        if len(failures) >= throttle.per_account:
            until = as_utc(failures[len(failures) - throttle.per_account]) + throttle.window
            raise TooManyRequests("Zu viele fehlgeschlagene Anmeldeversuche für dieses Konto. "
                                  "Bitte warten Sie einige Minuten.",
                                  {"retry_after": _seconds(until - now)})
    if client_ip:
        failures = session.execute(select(login_events.c.at).where(
            login_events.c.client_ip == client_ip, login_events.c.success.is_(False),
            login_events.c.at > since).order_by(login_events.c.at)).scalars().all()
        if len(failures) >= throttle.per_address:
            until = as_utc(failures[len(failures) - throttle.per_address]) + throttle.window
            raise TooManyRequests("Zu viele fehlgeschlagene Anmeldeversuche von Ihrer Adresse. "
                                  "Bitte warten Sie einige Minuten.",
                                  {"retry_after": _seconds(until - now)})


def record_login(session, *, realm, account, customer_id, client_ip, success, reason):
    session.execute(login_events.insert().values(
        realm=realm, account=str(account)[:254], customer_id=customer_id, client_ip=client_ip,
        success=success, reason=reason, at=utcnow()))


def _account_key(login_text, row):
    return str(row.id) if row is not None else login_text.strip().lower()


def attempt_login(session, *, login, password, client_ip, idle, absolute, throttle, otp=None, vault=None):
    """Try a customer login. Returns ``(session_info, None)`` or ``(None, error)``.

    The attempt is recorded either way, so the caller commits and *then* raises the
    error: failures must count even though the request fails. An unknown login and a
    wrong password get the same answer (and cost the same time).
    """
    row = find_customer_by_login(session, login)
    account = _account_key(login, row)
    check_throttle(session, realm="customer", account=account, client_ip=client_ip, throttle=throttle)
    ok = verify_password(row.password_hash if row is not None else _DUMMY_HASH, password)
    if row is None or not ok:
        record_login(session, realm="customer", account=account, customer_id=row.id if row else None,
                     client_ip=client_ip, success=False, reason="bad_credentials")
        return None, Unauthenticated(BAD_LOGIN)
    if not netlist.allows(row.ip_whitelist, client_ip):
        record_login(session, realm="customer", account=account, customer_id=row.id,
                     client_ip=client_ip, success=False, reason="ip_not_allowed")
        return None, Forbidden(_whitelist_message(client_ip), {"reason": "ip_not_allowed", "client_ip": client_ip})
    if row.totp_secret_enc is not None:
        if not (otp or "").strip():  # the password was right: ask for the second factor
            return None, Unauthenticated("Bitte geben Sie den Bestätigungscode Ihrer Authenticator-App "
                                         "oder einen Wiederherstellungscode ein.", {"reason": "otp_required"})
        if not second_factor_ok(session, row, otp, vault):
            record_login(session, realm="customer", account=account, customer_id=row.id,
                         client_ip=client_ip, success=False, reason="bad_otp")
            return None, Unauthenticated("Der Bestätigungscode ist falsch oder schon verwendet.",
                                         {"reason": "otp_required"})
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
            "notice": None if verified else UNVERIFIED_NOTICE}, None


def _whitelist_message(client_ip):
    return (f"Der Zugang von Ihrer IP-Adresse ({client_ip or 'unbekannt'}) ist durch die "
            f"IP-Whitelist dieses Kundenkontos nicht erlaubt.")


def authenticate(session, *, token, idle, client_ip=None):
    """The principal behind a token (either realm); idle and absolute expiry enforced,
    and for customers the IP whitelist against the caller's address."""
    table = sessions if token.startswith(CUSTOMER_TOKEN_PREFIX) else \
        staff_sessions if token.startswith(STAFF_TOKEN_PREFIX) else None
    if table is None:
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    row = session.execute(select(table).where(table.c.token_hash == hash_token(token))).first()
    now = utcnow()
    if (row is None or row.ended_at is not None or as_utc(row.expires_at) <= now
            or as_utc(row.last_seen_at) + idle <= now):
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    if table is sessions:
        whitelist, verified_at, closing_at = session.execute(
            select(customers.c.ip_whitelist, customers.c.email_verified_at, customers.c.closure_requested_at)
            .where(customers.c.id == row.customer_id)).one()
        if not netlist.allows(whitelist, client_ip):
            raise Forbidden(_whitelist_message(client_ip), {"reason": "ip_not_allowed", "client_ip": client_ip})
    last_seen = as_utc(row.last_seen_at)
    if now - last_seen > dt.timedelta(seconds=30):  # avoid a write per request
        session.execute(update(table).where(table.c.id == row.id).values(last_seen_at=now))
        last_seen = now
    # How long this answer stays true unless the session is ended (``session_ended``):
    # the gateway caches it no longer than this.
    expires_in = max(0.0, (min(as_utc(row.expires_at), last_seen + idle) - now).total_seconds())
    if table is sessions:
        return {"kind": "customer", "customer_id": row.customer_id, "session_id": row.id,
                "email_verified": verified_at is not None, "expires_in": expires_in,
                "closing": closing_at is not None}
    member = session.execute(select(staff).where(staff.c.id == row.staff_id)).first()
    if member is None or not member.active:
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    return {"kind": "staff", "staff_id": member.id, "roles": list(member.roles), "session_id": row.id,
            "expires_in": expires_in}


def sessions_changed(uow, *, session_id=None, customer_id=None, staff_id=None):
    """Tell every gateway (event ``session_ended``) that what ``authenticate`` answered for
    this session, or for every session of this customer or staff member, may no longer hold:
    a session ended, or the whitelist or the e-mail confirmation changed. Gateways drop
    their cached answers at once. Call in the transaction that made the change."""
    uow.emit("session_ended", {"session_id": session_id, "customer_id": customer_id,
                               "staff_id": staff_id})


def end_session(session, session_id):
    """End a session of either realm."""
    for table in (sessions, staff_sessions):
        session.execute(update(table).where(table.c.id == session_id,
                                            table.c.ended_at.is_(None)).values(ended_at=utcnow()))


def _active(now, idle):
    return and_(sessions.c.ended_at.is_(None), sessions.c.expires_at > now,
                sessions.c.last_seen_at > now - idle)


def list_sessions(session, customer_id, current_session_id, idle):
    now = utcnow()
    rows = session.execute(select(sessions).where(sessions.c.customer_id == customer_id, _active(now, idle))
                           .order_by(sessions.c.created_at.desc())).all()
    return [{"id": r.id, "created_at": r.created_at, "last_seen_at": r.last_seen_at,
             "expires_at": min(as_utc(r.expires_at), as_utc(r.last_seen_at) + idle),
             "client_ip": r.client_ip, "current": r.id == current_session_id} for r in rows]


def end_customer_session(session, customer_id, session_id):
    """End one of the customer's own sessions; another customer's is 404."""
    row = session.execute(select(sessions.c.id).where(sessions.c.id == session_id,
                                                      sessions.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound("Sitzung nicht gefunden.")
    end_session(session, session_id)


def end_other_sessions(session, customer_id, keep_session_id):
    return session.execute(update(sessions).where(
        sessions.c.customer_id == customer_id, sessions.c.ended_at.is_(None),
        sessions.c.id != (keep_session_id or "")).values(ended_at=utcnow())).rowcount


def recent_logins(session, customer_id, page, per_page):
    base = select(login_events).where(login_events.c.realm == "customer",
                                      login_events.c.customer_id == customer_id)
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar()
    rows = session.execute(base.order_by(login_events.c.at.desc(), login_events.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [{"at": r.at, "client_ip": r.client_ip, "success": r.success, "reason": r.reason}
                      for r in rows], "total": total, "page": page, "per_page": per_page}


# --- passwords ---------------------------------------------------------------------------

def change_password(uow, customer_id, data, *, session_id, client_ip, throttle):
    """Change the service password. Returns an error to raise after commit (a wrong current
    password is recorded as a failed attempt and throttled like a login), or None."""
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    check_throttle(session, realm="customer", account=str(customer_id), client_ip=None, throttle=throttle)
    errors = {}
    if not verify_password(row.password_hash, data["current_password"]):
        record_login(session, realm="customer", account=str(customer_id), customer_id=customer_id,
                     client_ip=client_ip, success=False, reason="reauth_failed")
        return ValidationFailed("Das aktuelle Passwort ist falsch.",
                                fields={"current_password": ["Das aktuelle Passwort ist falsch."]})
    problems = policy.service_password_problems(data["new_password"], customer_id=customer_id,
                                                email=row.email)
    if problems:
        errors["new_password"] = problems
    elif verify_password(row.password_hash, data["new_password"]):
        errors["new_password"] = ["Das neue Passwort muss sich vom aktuellen unterscheiden."]
    if data["new_password"] != data["new_password_repeat"]:
        errors["new_password_repeat"] = ["Die Wiederholung stimmt nicht mit dem neuen Passwort überein."]
    if errors:
        return ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    now = utcnow()
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        password_hash=hash_password(data["new_password"]), password_changed_at=now, updated_at=now))
    ended = end_other_sessions(session, customer_id, session_id)
    sessions_changed(uow, customer_id=customer_id)
    uow.emit("password_changed", {"customer_id": customer_id, "changed_at": now,
                                  "client_ip": client_ip, "sessions_ended": ended})
    return None


def set_phone_password(session, customer_id, data, vault):
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


def phone_password_status(session, customer_id):
    row = get_customer_row(session, customer_id)
    return {"phone_password_set": row.phone_password_enc is not None,
            "phone_password_set_at": row.phone_password_set_at}


def reveal_phone_password(session, customer_id, *, session_id, password, vault, fresh, client_ip,
                          throttle):
    """The telephone password for a freshly authenticated customer: the session is younger
    than ``fresh``, or the service password is given again. Returns (result, error)."""
    row = get_customer_row(session, customer_id)
    if password:
        error = reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
        if error:
            return None, error
    else:
        created = session.execute(select(sessions.c.created_at).where(
            sessions.c.id == (session_id or ""), sessions.c.customer_id == customer_id)).scalar()
        if created is None or as_utc(created) + fresh < utcnow():
            return None, Forbidden("Bitte bestätigen Sie zuerst Ihr Service-Passwort, um das "
                                   "Telefon-Passwort anzuzeigen.", {"reason": "reauthentication_required"})
    if row.phone_password_enc is None:
        return None, NotFound("Es ist noch kein Telefon-Passwort hinterlegt.")
    return {"phone_password": vault.decrypt(row.phone_password_enc),
            "phone_password_set_at": row.phone_password_set_at}, None


def verify_phone_password(session, customer_id, password, *, staff_id, vault, max_failures, window):
    """Staff check what a caller says; failures per customer are limited within ``window``.
    Returns (result, error): the attempt is recorded either way."""
    row = get_customer_row(session, customer_id)
    now = utcnow()
    last_ok = session.execute(select(func.max(phone_password_checks.c.at)).where(
        phone_password_checks.c.customer_id == customer_id,
        phone_password_checks.c.success.is_(True))).scalar()
    start = max(now - window, as_utc(last_ok)) if last_ok is not None else now - window
    failures = session.execute(select(phone_password_checks.c.at).where(
        phone_password_checks.c.customer_id == customer_id, phone_password_checks.c.success.is_(False),
        phone_password_checks.c.at > start).order_by(phone_password_checks.c.at)).scalars().all()
    if len(failures) >= max_failures:
        until = as_utc(failures[len(failures) - max_failures]) + window
        raise TooManyRequests("Zu viele falsche Telefon-Passwörter für diesen Kunden. Bitte später erneut "
                              "versuchen oder den Kunden anders verifizieren.",
                              {"retry_after": _seconds(until - now)})
    if row.phone_password_enc is None:
        return None, Unprocessable("Der Kunde hat kein Telefon-Passwort hinterlegt.")
    ok = secrets.compare_digest(vault.decrypt(row.phone_password_enc).encode(), (password or "").encode())
    session.execute(phone_password_checks.insert().values(customer_id=customer_id, staff_id=staff_id,
                                                          success=ok, at=now))
    return {"verified": ok}, None


# --- two-factor login (TOTP + recovery codes) ---------------------------------------------

def second_factor_ok(session, row, otp, vault):
    """A TOTP code (once per time step) or an unused recovery code (used up now)."""
    step = twofactor.match_totp(vault.decrypt(row.totp_secret_enc), otp, row.totp_last_step)
    if step is not None:
        done = session.execute(update(customers).where(
            customers.c.id == row.id,
            or_(customers.c.totp_last_step.is_(None), customers.c.totp_last_step < step))
            .values(totp_last_step=step)).rowcount
        return done == 1
    used = session.execute(update(recovery_codes).where(
        recovery_codes.c.customer_id == row.id, recovery_codes.c.used_at.is_(None),
        recovery_codes.c.code_hash == twofactor.hash_recovery_code(otp)).values(used_at=utcnow())).rowcount
    return used >= 1


def reauthenticate(session, row, password, *, client_ip, throttle):
    """Check the service password again (sensitive changes); an error to raise after commit or None."""
    check_throttle(session, realm="customer", account=str(row.id), client_ip=None, throttle=throttle)
    if not verify_password(row.password_hash, password or ""):
        record_login(session, realm="customer", account=str(row.id), customer_id=row.id,
                     client_ip=client_ip, success=False, reason="reauth_failed")
        return ValidationFailed("Das Service-Passwort ist falsch.",
                                fields={"password": ["Das Service-Passwort ist falsch."]})
    return None


def two_factor_status(session, customer_id):
    row = get_customer_row(session, customer_id)
    left = session.execute(select(func.count()).select_from(recovery_codes).where(
        recovery_codes.c.customer_id == customer_id, recovery_codes.c.used_at.is_(None))).scalar()
    return {"enabled": row.totp_secret_enc is not None, "enabled_at": row.totp_enabled_at,
            "setup_pending": row.totp_pending_enc is not None,
            "recovery_codes_left": left if row.totp_secret_enc is not None else 0}


def two_factor_setup(session, customer_id, password, *, vault, client_ip, throttle):
    """A new secret to scan (confirmed by :func:`two_factor_enable`). Returns (result, error)."""
    row = get_customer_row(session, customer_id, lock=True)
    error = reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    if error:
        return None, error
    if row.totp_secret_enc is not None:
        raise Conflict("Die Zwei-Faktor-Anmeldung ist bereits aktiv. Bitte deaktivieren Sie sie zuerst.")
    secret = twofactor.new_secret()
    session.execute(update(customers).where(customers.c.id == customer_id)
                    .values(totp_pending_enc=vault.encrypt(secret)))
    return {"secret": secret, "otpauth_uri": twofactor.provisioning_uri(secret, f"{row.id} ({row.email})")}, None


def _new_recovery_codes(session, customer_id):
    session.execute(recovery_codes.delete().where(recovery_codes.c.customer_id == customer_id))
    codes = twofactor.new_recovery_codes()
    session.execute(recovery_codes.insert(), [{"customer_id": customer_id,
                                               "code_hash": twofactor.hash_recovery_code(c)} for c in codes])
    return codes


def two_factor_enable(session, customer_id, code, *, vault):
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


def two_factor_disable(session, customer_id, password, *, client_ip, throttle):
    row = get_customer_row(session, customer_id, lock=True)
    error = reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    if error:
        return error
    session.execute(update(customers).where(customers.c.id == customer_id).values(
        totp_secret_enc=None, totp_pending_enc=None, totp_enabled_at=None, totp_last_step=None))
    session.execute(recovery_codes.delete().where(recovery_codes.c.customer_id == customer_id))
    return None


def two_factor_new_codes(session, customer_id, password, *, client_ip, throttle):
    row = get_customer_row(session, customer_id, lock=True)
    error = reauthenticate(session, row, password, client_ip=client_ip, throttle=throttle)
    if error:
        return None, error
    if row.totp_secret_enc is None:
        raise Unprocessable("Die Zwei-Faktor-Anmeldung ist nicht aktiv.")
    return {"recovery_codes": _new_recovery_codes(session, customer_id)}, None


# --- IP whitelist ------------------------------------------------------------------------

def get_whitelist(session, customer_id, client_ip):
    row = get_customer_row(session, customer_id)
    return {"entries": list(row.ip_whitelist or []), "client_ip": client_ip,
            "client_ip_allowed": netlist.allows(row.ip_whitelist, client_ip)}


def set_whitelist(session, customer_id, data, client_ip):
    entries, errors = netlist.normalise(data.get("entries"))
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die Einträge der IP-Whitelist.", fields=errors)
    if entries and not netlist.allows(entries, client_ip) and not data.get("confirm_lockout"):
        raise Conflict(f"Ihre aktuelle IP-Adresse ({client_ip or 'unbekannt'}) ist nicht in der Liste: "
                       f"Sie könnten sich danach nicht mehr anmelden. Bitte bestätigen Sie das ausdrücklich "
                       f"(confirm_lockout).", {"reason": "confirmation_required", "client_ip": client_ip})
    get_customer_row(session, customer_id, lock=True)
    session.execute(update(customers).where(customers.c.id == customer_id).values(ip_whitelist=entries))
    return get_whitelist(session, customer_id, client_ip)


def staff_clear_whitelist(session, customer_id):
    """Support lifts the whitelist of a customer who locked themself out (after verifying them)."""
    get_customer_row(session, customer_id, lock=True)
    session.execute(update(customers).where(customers.c.id == customer_id).values(ip_whitelist=[]))


# --- contact persons (Ansprechpartner) ---------------------------------------------------

MAX_CONTACTS = 20


def _contact_view(r):
    return {"id": r.id, "name": r.name, "email": r.email, "phone": r.phone, "role": r.role,
            "relation": r.relation, "may_support": r.may_support, "may_billing": r.may_billing,
            "created_at": r.created_at, "updated_at": r.updated_at}


def _clean_contact(data, country):
    errors, out = {}, {}
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


def list_contacts(session, customer_id):
    rows = session.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                           .order_by(contacts.c.created_at, contacts.c.id)).all()
    return [_contact_view(r) for r in rows]


def add_contact(session, customer_id, data):
    customer = get_customer_row(session, customer_id, lock=True)
    values = _clean_contact(data, customer.country)
    count = session.execute(select(func.count()).select_from(contacts)
                            .where(contacts.c.customer_id == customer_id)).scalar()
    if count >= MAX_CONTACTS:
        raise Unprocessable(f"Es sind höchstens {MAX_CONTACTS} Ansprechpartner möglich.")
    now = utcnow()
    contact_id = str(uuid.uuid4())
    session.execute(contacts.insert().values(id=contact_id, customer_id=customer_id, created_at=now,
                                             updated_at=now, **values))
    return _get_contact(session, customer_id, contact_id)


def _get_contact(session, customer_id, contact_id):
    row = session.execute(select(contacts).where(contacts.c.id == str(contact_id),
                                                 contacts.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound("Ansprechpartner nicht gefunden.")
    return _contact_view(row)


def update_contact(session, customer_id, contact_id, data):
    _get_contact(session, customer_id, contact_id)
    customer = get_customer_row(session, customer_id)
    values = _clean_contact(data, customer.country)
    session.execute(update(contacts).where(contacts.c.id == str(contact_id))
                    .values(updated_at=utcnow(), **values))
    return _get_contact(session, customer_id, contact_id)


def delete_contact(session, customer_id, contact_id):
    _get_contact(session, customer_id, contact_id)
    session.execute(contacts.delete().where(contacts.c.id == str(contact_id)))


def _norm_name(name):
    return " ".join((name or "").replace(",", " ").casefold().split())


def check_contact(session, customer_id, name, purpose):
    """May ``name`` (a person's name or e-mail address) speak for the customer about
    ``purpose`` (``support`` or ``billing``)? The customer themself always may; a
    registered contact person when they hold that permission."""
    if purpose not in ("support", "billing"):
        raise ValidationFailed(fields={"purpose": ["Erlaubt sind support und billing."]})
    denied = {"authorised": False, "kind": None, "contact_id": None, "name": name, "email": None}
    row = session.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is None:
        return denied
    wanted = _norm_name(name)
    wanted_sorted = sorted(wanted.split())
    own = _norm_name(f"{row.first_name} {row.last_name}")
    if wanted and (sorted(own.split()) == wanted_sorted or wanted == row.email.casefold()):
        return {"authorised": True, "kind": "customer", "contact_id": None,
                "name": f"{row.first_name} {row.last_name}", "email": row.email}
    permission = contacts.c.may_support if purpose == "support" else contacts.c.may_billing
    for contact in session.execute(select(contacts).where(contacts.c.customer_id == customer_id)).all():
        if wanted and (sorted(_norm_name(contact.name).split()) == wanted_sorted
                       or (contact.email and wanted == contact.email.casefold())):
            if contact._mapping[permission.name]:
                return {"authorised": True, "kind": "contact", "contact_id": contact.id,
                        "name": contact.name, "email": contact.email}
            return dict(denied, kind="contact", contact_id=contact.id, name=contact.name,
                        email=contact.email)
    return denied


# --- notifications (Mitteilungen) --------------------------------------------------------

# topic -> (German label, default); mandatory mail is not switchable and never asked.
TOPICS = {
    "newsletter": ("Newsletter", False),
    "product_news": ("Produktneuheiten und Angebote", False),
    "maintenance": ("Wartungsankündigungen", True),
    "invoice_notice": ("Hinweis per E-Mail bei neuer Rechnung", True),
    "support_updates": ("Benachrichtigung bei Antworten auf Supportanfragen", True),
}
MANDATORY_TOPICS = {"invoice": "Rechnungen", "security": "Sicherheitshinweise (z. B. Passwortänderung)"}


def notification_settings(session, customer_id):
    get_customer_row(session, customer_id)
    stored = dict(session.execute(select(notification_preferences.c.topic, notification_preferences.c.enabled)
                                  .where(notification_preferences.c.customer_id == customer_id)).all())
    items = [{"topic": t, "label": label, "enabled": stored.get(t, default), "mandatory": False}
             for t, (label, default) in TOPICS.items()]
    items += [{"topic": t, "label": label, "enabled": True, "mandatory": True}
              for t, label in MANDATORY_TOPICS.items()]
    return {"items": items}


def set_notifications(session, customer_id, data):
    get_customer_row(session, customer_id, lock=True)
    errors = {t: ["Pflichtmitteilungen können nicht abbestellt werden."]
              for t in MANDATORY_TOPICS if t in data and data[t] is not True}
    if errors:
        raise ValidationFailed("Pflichtmitteilungen können nicht abbestellt werden.", fields=errors)
    now = utcnow()
    for topic, enabled in data.items():
        if topic not in TOPICS:
            continue
        done = session.execute(update(notification_preferences).where(
            notification_preferences.c.customer_id == customer_id,
            notification_preferences.c.topic == topic).values(enabled=enabled, updated_at=now)).rowcount
        if not done:
            session.execute(notification_preferences.insert().values(
                customer_id=customer_id, topic=topic, enabled=enabled, updated_at=now))
    return notification_settings(session, customer_id)


def notification_allowed(session, customer_id, topic):
    """May optional mail of ``topic`` go to the customer? Mandatory topics: always."""
    if topic in MANDATORY_TOPICS:
        return True
    if topic not in TOPICS:
        raise ValidationFailed(f"Unbekanntes Thema {topic!r}.",
                               fields={"topic": [f"Erlaubt: {', '.join(TOPICS)}"]})
    if session.execute(select(customers.c.id).where(customers.c.id == customer_id)).first() is None:
        return False
    stored = session.execute(select(notification_preferences.c.enabled).where(
        notification_preferences.c.customer_id == customer_id,
        notification_preferences.c.topic == topic)).scalar()
    return TOPICS[topic][1] if stored is None else bool(stored)


# --- data-processing agreement (AV) ------------------------------------------------------

def _signature_view(r):
    return {"id": r.id, "version": r.version, "title": r.title, "signer_name": r.signer_name,
            "signer_position": r.signer_position, "signed_at": r.signed_at, "client_ip": r.client_ip,
            "text_sha256": r.text_sha256}


def av_status(session, customer_id):
    get_customer_row(session, customer_id)
    current = av.current()
    rows = session.execute(select(av_signatures).where(av_signatures.c.customer_id == customer_id)
                           .order_by(av_signatures.c.signed_at.desc())).all()
    return {"current": {"version": current.version, "title": current.title, "text": current.text,
                        "valid_from": current.valid_from, "text_sha256": current.sha256},
            "signed": any(r.version == current.version for r in rows),
            "signatures": [_signature_view(r) for r in rows]}


def sign_av(uow, customer_id, data, client_ip):
    session = uow.session
    row = get_customer_row(session, customer_id, lock=True)
    current = av.current()
    errors = {}
    for field, label in (("signer_name", "Namen"), ("signer_position", "Position")):
        value = " ".join((data.get(field) or "").split())
        if not value:
            errors[field] = [f"Bitte geben Sie Ihren {label} an." if field == "signer_name"
                             else "Bitte geben Sie Ihre Position an (z. B. Geschäftsführer)."]
        data[field] = value
    if data.get("accept") is not True:
        errors["accept"] = ["Bitte bestätigen Sie, dass Sie die Vereinbarung abschließen."]
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die markierten Felder.", fields=errors)
    if data.get("version") != current.version:
        raise Conflict("Es gibt eine neue Fassung der Vereinbarung. Bitte lesen Sie sie und bestätigen Sie "
                       "die aktuelle Version.", {"reason": "new_version", "current_version": str(current.version)})
    if session.execute(select(av_signatures.c.id).where(av_signatures.c.customer_id == customer_id,
                                                        av_signatures.c.version == current.version)).first():
        raise Conflict("Diese Fassung der Vereinbarung haben Sie bereits abgeschlossen.")
    now = utcnow()
    signature_id = str(uuid.uuid4())
    session.execute(av_signatures.insert().values(
        id=signature_id, customer_id=customer_id, version=current.version, title=current.title,
        text_sha256=current.sha256, signer_name=data["signer_name"],
        signer_position=data["signer_position"], client_ip=client_ip, signed_at=now))
    uow.emit("av_agreement_signed", {
        "agreement_id": signature_id, "customer_id": customer_id, "version": current.version,
        "title": current.title, "text": current.text, "signed_at": now,
        "signer_name": data["signer_name"], "signer_position": data["signer_position"],
        "client_ip": client_ip,
        "customer": {k: row._mapping[k] for k in ("company", "first_name", "last_name", "street", "zip",
                                                  "city", "country")}})
    return _signature_view(session.execute(select(av_signatures)
                                           .where(av_signatures.c.id == signature_id)).first())


# --- staff realm ---------------------------------------------------------------------------

def create_staff(session, *, email, name, roles, password):
    staff_id = str(uuid.uuid4())
    session.execute(staff.insert().values(id=staff_id, email=email.lower(), name=name, roles=list(roles),
                                          password_hash=hash_password(password), created_at=utcnow()))
    return staff_id


def attempt_staff_login(session, *, login, password, client_ip, idle, absolute, throttle):
    """As :func:`attempt_login`, for the back office realm."""
    account = login.strip().lower()
    check_throttle(session, realm="staff", account=account, client_ip=client_ip, throttle=throttle)
    member = session.execute(select(staff).where(func.lower(staff.c.email) == account)).first()
    ok = verify_password(member.password_hash if member is not None else _DUMMY_HASH, password)
    if member is None or not member.active or not ok:
        record_login(session, realm="staff", account=account, customer_id=None, client_ip=client_ip,
                     success=False, reason="bad_credentials")
        return None, Unauthenticated(BAD_STAFF_LOGIN)
    record_login(session, realm="staff", account=account, customer_id=None, client_ip=client_ip,
                 success=True, reason="ok")
    token = STAFF_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(staff_sessions.insert().values(
        id=str(uuid.uuid4()), token_hash=hash_token(token), staff_id=member.id, client_ip=client_ip,
        created_at=now, last_seen_at=now, expires_at=now + absolute))
    return {"token": token, "token_type": "Bearer", "staff_id": member.id, "roles": list(member.roles),
            "expires_at": min(now + absolute, now + idle)}, None


def search_customers(session, q, page, per_page):
    stmt = select(customers)
    q = (q or "").strip()
    if q:
        like = f"%{q.lower()}%"
        conds = [func.lower(customers.c.email).like(like), func.lower(customers.c.company).like(like),
                 func.lower(customers.c.last_name).like(like), func.lower(customers.c.first_name).like(like),
                 func.lower(customers.c.city).like(like)]
        if q.isdigit() and len(q) <= 18:
            conds.append(customers.c.id == int(q))
        stmt = stmt.where(or_(*conds))
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar()
    rows = session.execute(stmt.order_by(customers.c.id).limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [address_view(r) for r in rows], "total": total, "page": page, "per_page": per_page}


def staff_customer_view(session, customer_id):
    row = get_customer_row(session, customer_id)
    return {**address_view(row), "contacts": list_contacts(session, customer_id),
            "phone_password_set": row.phone_password_enc is not None,
            "ip_whitelist": list(row.ip_whitelist or []),
            "two_factor_enabled": row.totp_secret_enc is not None,
            "av_signed": av_status(session, customer_id)["signed"]}


def owner_change(uow, customer_id, data):
    """Complete an owner change (Inhaberwechsel): staff set the new company and, as the new
    owner brings them, any other address fields."""
    return update_address(uow, customer_id, dict(data, company=data.get("company") or ""), staff=True)

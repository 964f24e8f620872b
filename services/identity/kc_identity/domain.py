"""identity's rules, free of nameko: passwords, customer numbers, sessions."""
import datetime as dt
import hashlib
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update

from kc_common.db import as_utc, utcnow
from kc_common.errors import Unauthenticated
from kc_identity.models import counters, customers, sessions, staff, staff_sessions

CUSTOMER_TOKEN_PREFIX = "kcc_"   # the two realms' tokens can never be mistaken
STAFF_TOKEN_PREFIX = "kcs_"
FIRST_CUSTOMER_NUMBER = 100001
_hasher = PasswordHasher()  # argon2id
# Verified when the login is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


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
    """Next value of a gap-free series; the row lock serialises concurrent callers."""
    row = session.execute(select(counters.c.value).where(counters.c.name == series)
                          .with_for_update()).first()
    if row is None:
        session.execute(counters.insert().values(name=series, value=first))
        return first
    value = row.value + 1
    session.execute(update(counters).where(counters.c.name == series).values(value=value))
    return value


def create_customer(session, *, email, last_name, first_name, password, company=""):
    number = next_number(session, "customer", FIRST_CUSTOMER_NUMBER)
    now = utcnow()
    session.execute(customers.insert().values(
        id=number, email=email.lower(), company=company, last_name=last_name,
        first_name=first_name, password_hash=hash_password(password),
        created_at=now, updated_at=now))
    return number


def find_customer_by_login(session, login):
    login = login.strip()
    if login.isdigit():
        cond = customers.c.id == int(login)
    else:
        cond = func.lower(customers.c.email) == login.lower()
    return session.execute(select(customers).where(cond)).first()


def login(session, *, login, password, client_ip, idle, absolute):
    """Start a session; the same answer for an unknown login and a wrong password."""
    customer = find_customer_by_login(session, login)
    if customer is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthenticated("Kundennummer/E-Mail oder Passwort ist falsch.")
    if not verify_password(customer.password_hash, password):
        raise Unauthenticated("Kundennummer/E-Mail oder Passwort ist falsch.")
    token = CUSTOMER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(sessions.insert().values(
        id=str(uuid.uuid4()), token_hash=hash_token(token), customer_id=customer.id,
        client_ip=client_ip, created_at=now, last_seen_at=now,
        expires_at=now + absolute))
    return {"token": token, "token_type": "Bearer", "customer_id": customer.id,
            "expires_at": min(now + absolute, now + idle)}


def authenticate(session, *, token, idle):
    """The principal behind a token (either realm); idle and absolute expiry enforced."""
    table = sessions if token.startswith(CUSTOMER_TOKEN_PREFIX) else \
        staff_sessions if token.startswith(STAFF_TOKEN_PREFIX) else None
    if table is None:
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    row = session.execute(select(table).where(table.c.token_hash == hash_token(token))).first()
    now = utcnow()
    if (row is None or row.ended_at is not None or as_utc(row.expires_at) <= now
            or as_utc(row.last_seen_at) + idle <= now):
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    if now - as_utc(row.last_seen_at) > dt.timedelta(seconds=30):  # avoid a write per request
        session.execute(update(table).where(table.c.id == row.id).values(last_seen_at=now))
    if table is sessions:
        return {"kind": "customer", "customer_id": row.customer_id, "session_id": row.id}
    member = session.execute(select(staff).where(staff.c.id == row.staff_id)).first()
    if member is None or not member.active:
        raise Unauthenticated("Die Anmeldung ist ungültig oder abgelaufen.")
    return {"kind": "staff", "staff_id": member.id, "roles": list(member.roles), "session_id": row.id}


def end_session(session, session_id):
    """End a session of either realm."""
    for table in (sessions, staff_sessions):
        session.execute(update(table).where(table.c.id == session_id,
                                            table.c.ended_at.is_(None)).values(ended_at=utcnow()))


def create_staff(session, *, email, name, roles, password):
    staff_id = str(uuid.uuid4())
    session.execute(staff.insert().values(id=staff_id, email=email.lower(), name=name, roles=list(roles),
                                          password_hash=hash_password(password), created_at=utcnow()))
    return staff_id


def staff_login(session, *, login, password, client_ip, idle, absolute):
    member = session.execute(select(staff).where(func.lower(staff.c.email) == login.strip().lower())).first()
    if member is None or not member.active:
        verify_password(_DUMMY_HASH, password)
        raise Unauthenticated("E-Mail oder Passwort ist falsch.")
    if not verify_password(member.password_hash, password):
        raise Unauthenticated("E-Mail oder Passwort ist falsch.")
    token = STAFF_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(staff_sessions.insert().values(
        id=str(uuid.uuid4()), token_hash=hash_token(token), staff_id=member.id, client_ip=client_ip,
        created_at=now, last_seen_at=now, expires_at=now + absolute))
    return {"token": token, "token_type": "Bearer", "staff_id": member.id, "roles": list(member.roles),
            "expires_at": min(now + absolute, now + idle)}


def customer_view(row):
    """The ``customer_updated`` fields (docs/contracts.md) of a customer row."""
    data = row._mapping
    return {"customer_id": row.id, "company": row.company, "first_name": row.first_name,
            "last_name": row.last_name, "email": row.email,
            **{k: data.get(k) for k in ("street", "zip", "city", "country", "phone", "fax",
                                        "mobile", "vat_id")},
            "is_business": bool(row.company)}


def _norm_name(name):
    return " ".join(name.casefold().split())


def check_contact(session, customer_id, name, purpose):
    """The customer themself (first and last name, either order) is authorised.

    Registered contact persons (Ansprechpartner) are added with that feature.
    """
    row = session.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is not None and _norm_name(name) in {
            _norm_name(f"{row.first_name} {row.last_name}"), _norm_name(f"{row.last_name} {row.first_name}"),
            _norm_name(f"{row.last_name}, {row.first_name}")}:
        return {"authorised": True, "kind": "customer", "contact_id": None,
                "name": f"{row.first_name} {row.last_name}", "email": row.email}
    return {"authorised": False, "kind": None, "contact_id": None, "name": name, "email": None}


MANDATORY_TOPICS = {"invoice", "security"}


def notification_allowed(session, customer_id, topic):
    """Optional mail is allowed unless the customer opted out (preferences come with Mitteilungen)."""
    return True

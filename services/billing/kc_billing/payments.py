"""Payments: PSP payments (card, instant), bank transfers, SEPA debits; booked exactly once.

Exactly once: a payment row moves ``created -> pending -> succeeded|failed`` under
a row lock and never leaves a final state; the ledger booking of a payment is
unique per payment (``bookings.payment_id``), a bank statement line unique per
transaction id (``bookings.external_ref``). Webhook deliveries twice, late, or
racing the reconciliation all end in the same single booking.
"""
import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from decimal import Decimal

from sqlalchemy import select, update

from kc_billing import domain
from kc_billing.models import bookings, payments
from kc_billing.settings import origin_of
from kc_common.clock import berlin_date
from kc_common.db import as_utc, utcnow
from kc_common.errors import NotFound, Unprocessable, ValidationFailed
from kc_common.schemas import money

log = logging.getLogger(__name__)

CREATED, PENDING, SUCCEEDED, FAILED = "created", "pending", "succeeded", "failed"
FINAL = (SUCCEEDED, FAILED)


def payment_view(row):
    return {"payment_id": row.id, "method": row.method, "amount": row.amount,
            "currency": row.currency, "status": row.status, "redirect_url": row.redirect_url,
            "failure_reason": row.failure_reason, "created_at": row.created_at,
            "completed_at": row.completed_at}


def get_payment(session, customer_id, payment_id, lock=False):
    query = select(payments).where(payments.c.id == payment_id)
    if customer_id is not None:
        query = query.where(payments.c.customer_id == customer_id)
    row = session.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("Zahlung nicht gefunden.")
    return row


def start_payment(uow, customer_id, method, amount, idempotency_key=None):
    """Record a card/instant payment before asking the PSP; same key + same body = same payment."""
    session = uow.session
    balance = domain.balance_of(session, customer_id)
    if amount is None:
        if balance >= 0:
            raise Unprocessable("Es ist kein Betrag offen.")
        amount = -balance
    amount = money(amount)
    fingerprint = hashlib.sha256(json.dumps([method, str(amount)]).encode()).hexdigest()
    if idempotency_key:
        existing = session.execute(select(payments).where(
            payments.c.customer_id == customer_id,
            payments.c.idempotency_key == idempotency_key)).first()
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise Unprocessable("Dieser Idempotency-Key wurde bereits für eine andere Zahlung verwendet.")
            return existing, False
    payment_id = str(uuid.uuid4())
    session.execute(payments.insert().values(
        id=payment_id, customer_id=customer_id, method=method, amount=amount, currency="EUR",
        status=CREATED, idempotency_key=idempotency_key, request_hash=fingerprint,
        created_at=utcnow()))
    return get_payment(session, customer_id, payment_id), True


def attach_psp(uow, payment_id, psp):
    """The PSP accepted the payment: remember its id and the confirmation page."""
    uow.session.execute(update(payments).where(payments.c.id == payment_id).values(
        psp_payment_id=psp["psp_payment_id"], redirect_url=psp["redirect_url"]))
    # an outcome that raced ahead (webhook before this answer) stays as it is
    uow.session.execute(update(payments).where(payments.c.id == payment_id,
                                               payments.c.status == CREATED).values(status=PENDING))


def book_payment(uow, customer_id, amount, method, text, *, payment_id, external_ref=None, now=None,
                 applies_to_invoice_id=None):
    """The ledger booking of a received payment + ``payment_received``.

    It settles ``applies_to_invoice_id`` first (the invoice its remittance named), the rest
    oldest first (``domain.open_items``)."""
    session = uow.session
    now = now or utcnow()
    before = domain.invoice_open_amounts(session, customer_id)
    session.execute(bookings.insert().values(
        customer_id=customer_id, booked_at=now, type=domain.PAYMENT, text=text, amount=money(amount),
        payment_method=domain.METHOD_LETTER[method], payment_id=payment_id,
        external_ref=external_ref, applies_to_invoice_id=applies_to_invoice_id))
    after = domain.invoice_open_amounts(session, customer_id)
    settled = sorted(i for i, open_ in before.items() if open_ > 0 and after.get(i, 0) == 0)
    uow.emit("payment_received", {"payment_id": payment_id, "customer_id": customer_id,
                                  "amount": money(amount), "method": method, "received_at": now,
                                  "settled_invoice_ids": settled})
    return settled


def apply_outcome(uow, payment_id, status, amount=None, reason=None, psp_payment_id=None):
    """Apply a PSP outcome (webhook or reconciliation). True when this call booked it."""
    session = uow.session
    row = session.execute(select(payments.c.customer_id).where(payments.c.id == payment_id)).first()
    if row is None:
        log.warning("PSP outcome for unknown payment %s ignored", payment_id)
        return False
    domain.lock_customer(session, row.customer_id)
    payment = get_payment(session, None, payment_id, lock=True)
    if payment.status in FINAL or status not in FINAL:
        return False  # a duplicate or late delivery, or still pending: nothing to do
    if psp_payment_id and payment.psp_payment_id and payment.psp_payment_id != psp_payment_id:
        log.error("payment %s: PSP id %s does not match %s", payment_id, psp_payment_id,
                  payment.psp_payment_id)
        return False
    if status == SUCCEEDED and amount is not None and money(Decimal(amount)) != payment.amount:
        log.error("payment %s: PSP reports %s, expected %s; not booked", payment_id, amount,
                  payment.amount)
        status, reason = FAILED, "amount_mismatch"
    now = utcnow()
    session.execute(update(payments).where(payments.c.id == payment_id).values(
        status=status, failure_reason=reason if status == FAILED else None, completed_at=now,
        psp_payment_id=payment.psp_payment_id or psp_payment_id))
    if status == SUCCEEDED:
        book_payment(uow, payment.customer_id, payment.amount, payment.method,
                     f"Zahlung per {domain.METHOD_TEXT[payment.method]}", payment_id=payment_id, now=now)
    else:
        uow.emit("payment_failed", {"payment_id": payment_id, "customer_id": payment.customer_id,
                                    "amount": payment.amount, "method": payment.method,
                                    "reason": reason or "declined"})
    return True


def reconcilable(session, older_than):
    """Payments whose outcome we do not know yet, older than ``older_than`` (UTC instant)."""
    return session.execute(select(payments.c.id, payments.c.psp_payment_id).where(
        payments.c.status == PENDING, payments.c.psp_payment_id.isnot(None),
        payments.c.created_at <= older_than).order_by(payments.c.created_at).limit(500)).all()


REFERENCE = re.compile(r"KC\s*-?\s*(\d{6,})", re.IGNORECASE)


def customer_reference(customer_id):
    return f"KC{customer_id}"


def transfer_details(session, customer_id, settings):
    """What the customer needs for a bank transfer (Zahlung per Überweisung)."""
    balance = domain.balance_of(session, customer_id)
    seller = settings.seller
    return {"amount": money(-balance if balance < 0 else 0), "currency": "EUR",
            "account_holder": seller["name"], "iban": seller["iban"], "bic": seller["bic"],
            "bank": seller["bank"], "reference": customer_reference(customer_id)}


def book_transfer(uow, data, now=None):
    """Staff book an incoming bank transfer, matched to the customer by its reference.

    Idempotent per bank transaction id: the same statement line twice is booked once.
    ``now``: the booking instant (default: now; the demo seed books past transfers with it).
    """
    session = uow.session
    transaction_id = data["transaction_id"]
    existing = session.execute(select(bookings).where(bookings.c.external_ref == transaction_id)).first()
    if existing is not None:
        return {"booking_id": existing.id, "customer_id": existing.customer_id,
                "payment_id": existing.payment_id, "created": False}
    match = REFERENCE.search(data["reference"])
    if match is None:
        raise Unprocessable("Der Verwendungszweck enthält keine Kundennummer (KC…).",
                            {"fields": {"reference": ["Keine Kundennummer gefunden."]}})
    customer_id = int(match.group(1))
    if not domain.customer_known(session, customer_id) and not session.execute(
            select(bookings.c.id).where(bookings.c.customer_id == customer_id).limit(1)).first():
        raise Unprocessable(f"Kunde {customer_id} ist in der Buchhaltung unbekannt.",
                            {"fields": {"reference": ["Unbekannte Kundennummer."]}})
    domain.lock_customer(session, customer_id)
    payment_id = str(uuid.uuid4())
    now = now or utcnow()
    session.execute(payments.insert().values(
        id=payment_id, customer_id=customer_id, method="transfer", amount=money(data["amount"]),
        currency="EUR", status=SUCCEEDED, created_at=now, completed_at=now))
    value_date = data.get("value_date") or berlin_date(now)
    settled = book_payment(uow, customer_id, data["amount"], "transfer",
                           f"Überweisung vom {value_date:%d.%m.%Y}: {data['reference']}"[:500],
                           payment_id=payment_id, external_ref=transaction_id, now=now)
    booking_id = session.execute(select(bookings.c.id).where(
        bookings.c.payment_id == payment_id)).scalar_one()
    return {"booking_id": booking_id, "customer_id": customer_id, "payment_id": payment_id,
            "created": True, "settled_invoice_ids": settled}


def is_stale(row, seconds):
    return as_utc(row.created_at) <= utcnow() - dt.timedelta(seconds=seconds)


def checked_return_url(url, settings):
    """A payment's own return URL: http(s), no user info or fragment, and on an allowed origin
    (``PSP_RETURN_URL``'s or ``PSP_RETURN_ORIGINS``), else 400 naming ``return_url``: the PSP
    never sends a customer anywhere else (no open redirect). None: ``PSP_RETURN_URL``."""
    if url is None:
        return settings.psp_return_url
    if any(ch.isspace() or ord(ch) < 32 for ch in url) or "#" in url or "\\" in url:
        raise ValidationFailed(fields={"return_url": ["Keine gültige http(s)-Adresse."]})
    origin = origin_of(url)
    if origin is None:
        raise ValidationFailed(fields={"return_url": ["Keine gültige http(s)-Adresse."]})
    if origin not in settings.psp_return_origins:
        raise ValidationFailed(fields={"return_url": [
            "Diese Rücksprungadresse ist nicht erlaubt (nur die Adressen des KundenCenters)."]})
    return url


def with_payment_id(url, payment_id):
    return f"{url}{'&' if '?' in url else '?'}payment_id={payment_id}"

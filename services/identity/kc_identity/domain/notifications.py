"""Notification preferences (Mitteilungen): optional topics; mandatory mail is never asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kc_common.db import utcnow
from kc_common.errors import ValidationFailed
from kc_identity.domain.customers import get_customer_row
from kc_identity.models import customers, notification_preferences

# topic -> (German label, default); mandatory mail is not switchable and never asked.
TOPICS = {
    "newsletter": ("Newsletter", False),
    "product_news": ("Produktneuheiten und Angebote", False),
    "maintenance": ("Wartungsankündigungen", True),
    "invoice_notice": ("Hinweis per E-Mail bei neuer Rechnung", True),
    "support_updates": ("Benachrichtigung bei Antworten auf Supportanfragen", True),
}
MANDATORY_TOPICS = {"invoice": "Rechnungen", "security": "Sicherheitshinweise (z. B. Passwortänderung)"}


def notification_settings(session: Session, customer_id: int) -> dict[str, Any]:
    get_customer_row(session, customer_id)
    stored = dict(session.execute(select(notification_preferences.c.topic, notification_preferences.c.enabled)
                                  .where(notification_preferences.c.customer_id == customer_id)).all())
    items = [{"topic": t, "label": label, "enabled": stored.get(t, default), "mandatory": False}
             for t, (label, default) in TOPICS.items()]
    items += [{"topic": t, "label": label, "enabled": True, "mandatory": True}
              for t, label in MANDATORY_TOPICS.items()]
    return {"items": items}


def set_notifications(session: Session, customer_id: int, data: dict[str, Any]) -> dict[str, Any]:
    get_customer_row(session, customer_id, lock=True)
    errors = {t: ["Pflichtmitteilungen können nicht abbestellt werden."]
              for t in MANDATORY_TOPICS if t in data and data[t] is not True}
    if errors:
        raise ValidationFailed("Pflichtmitteilungen können nicht abbestellt werden.", fields=errors)
    now = utcnow()
    for topic, enabled in data.items():
        if topic not in TOPICS:
            continue
        done = session.execute(update(notification_preferences).where(  # type: ignore[attr-defined]  # a DML statement's CursorResult
            notification_preferences.c.customer_id == customer_id,
            notification_preferences.c.topic == topic).values(enabled=enabled, updated_at=now)).rowcount
        if not done:
            session.execute(notification_preferences.insert().values(
                customer_id=customer_id, topic=topic, enabled=enabled, updated_at=now))
    return notification_settings(session, customer_id)


def notification_allowed(session: Session, customer_id: int, topic: str) -> bool:
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

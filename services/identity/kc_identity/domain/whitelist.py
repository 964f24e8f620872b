"""The customer's IP whitelist (enforced at login and on every authenticated call)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from kc_common.errors import Conflict, ValidationFailed
from kc_identity import netlist
from kc_identity.domain.customers import get_customer_row
from kc_identity.models import customers


def get_whitelist(session: Session, customer_id: int, client_ip: str | None) -> dict[str, Any]:
    row = get_customer_row(session, customer_id)
    return {"entries": list(row.ip_whitelist or []), "client_ip": client_ip,
            "client_ip_allowed": netlist.allows(row.ip_whitelist, client_ip)}


def set_whitelist(session: Session, customer_id: int, data: dict[str, Any],
                  client_ip: str | None) -> dict[str, Any]:
    entries, errors = netlist.normalise(data.get("entries"))
    if errors:
        raise ValidationFailed("Bitte prüfen Sie die Einträge der IP-Whitelist.", fields=errors)
    check_lockout(entries, client_ip, confirmed=bool(data.get("confirm_lockout")))
    get_customer_row(session, customer_id, lock=True)
    session.execute(update(customers).where(customers.c.id == customer_id).values(ip_whitelist=entries))
    return get_whitelist(session, customer_id, client_ip)


def check_lockout(entries: Sequence[str], client_ip: str | None, *, confirmed: bool) -> None:
    """A whitelist that would shut out the address the customer sets it from needs their
    explicit confirmation (409 ``confirmation_required`` otherwise); an empty list allows all."""
    if entries and not netlist.allows(entries, client_ip) and not confirmed:
        raise Conflict(f"Ihre aktuelle IP-Adresse ({client_ip or 'unbekannt'}) ist nicht in der Liste: "
                       f"Sie könnten sich danach nicht mehr anmelden. Bitte bestätigen Sie das ausdrücklich "
                       f"(confirm_lockout).", {"reason": "confirmation_required", "client_ip": client_ip})


def staff_clear_whitelist(session: Session, customer_id: int) -> None:
    """Support lifts the whitelist of a customer who locked themself out (after verifying them)."""
    get_customer_row(session, customer_id, lock=True)
    session.execute(update(customers).where(customers.c.id == customer_id).values(ip_whitelist=[]))

"""Shared rules: domain names, money, the contract state machine."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import idna
from sqlalchemy import Row

from kc_common.domains import lookalike_problem
from kc_common.errors import Conflict
from kc_common.schemas import money

# Contract states and the only transitions allowed between them.
PENDING, ACTIVE, CANCELLED, TERMINATED = "pending", "active", "cancelled", "terminated"
TRANSITIONS = {
    PENDING: {ACTIVE, CANCELLED},      # paid -> active; withdrawn before activation
    ACTIVE: {CANCELLED},               # cancelled: runs until its end date
    CANCELLED: {TERMINATED},           # the term ended (scheduled job)
    TERMINATED: set(),
}
STATUS_TEXT = {PENDING: "Ausstehend", ACTIVE: "Aktiv", CANCELLED: "Gekündigt", TERMINATED: "Beendet"}
# States in which the customer still has the product (and may log in to its panel).
RUNNING = (ACTIVE, CANCELLED)

# The guide's three tables.
CATEGORY_KINDS = {"webhosting": ("hosting", "domain"), "server": ("server",), "other": ("addon",)}
ORDERABLE_KINDS = ("hosting", "domain", "server", "addon")

# Zugang: which admin panel a product opens, and the link text the guide shows.
PANEL_LABELS = {"servercon": "Login", "reseller": "Admin Reseller", "cloud": "Cloud Platform Login"}


def check_transition(current: Any, target: str) -> None:
    """Refuse a transition the state machine does not allow (409, with both states)."""
    if target not in TRANSITIONS.get(current, set()):
        raise Conflict(f"Ein Vertrag im Status „{STATUS_TEXT.get(current, current)}“ kann nicht "
                       f"in den Status „{STATUS_TEXT.get(target, target)}“ wechseln.",
                       {"status": current, "target": target})


def normalise_domain(name: str) -> str:
    """IDNA 2008 A-label form of a registrable domain, or ValueError with a German reason."""
    name = name.strip().rstrip(".").lower()
    if not name or "." not in name:
        raise ValueError("Bitte geben Sie eine vollständige Domain an, z. B. beispiel.de.")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError("Die Domain enthält ungültige Zeichen.") from None
    problem = lookalike_problem(ascii_name)
    if problem:
        raise ValueError(problem)
    if len(ascii_name) > 253 or any(len(label) > 63 for label in ascii_name.split(".")):
        raise ValueError("Die Domain ist zu lang.")
    if ascii_name.count(".") != 1:
        raise ValueError("Bitte bestellen Sie die Domain ohne Subdomain (z. B. beispiel.de).")
    return ascii_name


def request_hash(items: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def gross(net: Decimal | str, vat_rate: Decimal | str) -> Decimal:
    return money(Decimal(net) * (1 + Decimal(vat_rate) / 100))


def period_price(product: Row[Any], period_months: int, options: Sequence[Row[Any]] = ()) -> Decimal:
    """Net price of one payment period: monthly price (domains: yearly) times the period."""
    if product.kind == "domain":
        return money(product.price_net * period_months / 12)
    monthly = product.price_net + sum((o.price_net for o in options), Decimal("0"))
    return money(monthly * period_months)

"""Orders: validated as a whole, placed atomically (all items or none)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kc_catalog.domain.common import (
    ACTIVE,
    ORDERABLE_KINDS,
    PENDING,
    TERMINATED,
    normalise_domain,
    period_price,
    request_hash,
)
from kc_catalog.models import contracts, ip_addresses, orders, products
from kc_common.clock import berlin_today
from kc_common.db import UnitOfWork, utcnow
from kc_common.errors import Conflict, Unprocessable, ValidationFailed

SERVER_DOMAIN = "kundencenter-server.de"
DEFAULT_IP_POOL = "178.250.10.0/24"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def find_existing(session: Session, customer_id: int, idempotency_key: str | None,
                  items: list[dict[str, Any]]) -> int | None:
    """The order placed before with this key (same items), None, or 422 for other items."""
    if not idempotency_key:
        return None
    existing = session.execute(select(orders).where(
        orders.c.customer_id == customer_id, orders.c.idempotency_key == idempotency_key)).first()
    if existing is None:
        return None
    if existing.request_hash != request_hash(items):
        raise Unprocessable("Dieser Idempotency-Key wurde bereits für eine andere Bestellung verwendet.")
    return existing.id


def contract_terms(product: Row[Any], period: int, options: Sequence[Row[Any]] = (),
                   usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """Description, booked options and price of one period, fixed at order time."""
    parts = [product.name] + [o.name for o in options]
    if usage:
        parts.append(f"Nutzung: {usage}")
    description = " - ".join(parts) if product.kind == "server" else product.description
    return {"description": description[:500], "price_net": period_price(product, period, options),
            "options": [{"product_id": o.id, "name": o.name, "price_net": str(o.price_net)}
                        for o in options]}


def event_item(contract_id: int | None, product: Row[Any], item: dict[str, Any], terms: dict[str, Any],
               status: str, period_start: dt.date, period_end: dt.date, ips: Sequence[str]) -> dict[str, Any]:
    """One item of ``order_placed`` (see docs/contracts.md; fields are only ever added)."""
    return {
        "contract_id": contract_id, "product_id": product.id, "product_name": product.name,
        "kind": product.kind, "domain": item.get("domain"), "period_months": item["period"],
        "price_net": terms["price_net"], "vat_rate": product.vat_rate,
        "period_start": period_start, "period_end": period_end, "status": status,
        "label": item.get("label"), "description": terms["description"],
        "options": terms["options"], "ip_addresses": list(ips),
    }


def _validate_item(session: Session, i: int, item: dict[str, Any],
                   errors: dict[str, Any]) -> dict[str, Any] | None:
    """Resolve one order item or record its errors under ``items.<i>.<field>``."""
    product = session.execute(select(products).where(products.c.id == item["product_id"])).first()
    option_ids = item.get("options") or []
    options = {}
    if product is not None and product.active and product.kind == "server" and option_ids:
        options = {r.id: r for r in session.execute(select(products).where(
            products.c.id.in_(option_ids), products.c.kind == "option", products.c.active.is_(True))).all()}
    return check_item(i, item, product, options, errors)


def check_item(i: int, item: dict[str, Any], product: Any, options: dict[int, Any],
               errors: dict[str, Any]) -> dict[str, Any] | None:
    """The rules of one order item on its product (None: unknown) and the active options it names
    (``{id: row}``, those found): records errors under ``items.<i>.<field>`` and returns the
    resolved item, or None when the product itself is refused."""
    def fail(field: str, message: str) -> None:
        errors.setdefault(f"items.{i}.{field}", []).append(message)

    if product is None or not product.active or product.kind not in ORDERABLE_KINDS:
        fail("product_id", "Unbekanntes Produkt." if product is None or not product.active else
             "Diese Option kann nur zusammen mit einem Server bestellt werden.")
        return None
    period = item.get("period_months") or product.periods[-1]
    if period not in product.periods:
        fail("period_months", f"Zahlungsperiode {period} Monate wird für dieses Produkt nicht angeboten "
                              f"(möglich: {', '.join(map(str, product.periods))}).")
    resolved = {"product": product, "period": period, "domain": None, "label": None,
                "options": [], "usage": item.get("usage")}
    raw_domain, label = item.get("domain"), item.get("label")
    if product.kind == "domain":
        if not raw_domain:
            fail("domain", "Bitte geben Sie die Domain an.")
        else:
            try:
                resolved["domain"] = normalise_domain(raw_domain)
            except ValueError as exc:
                fail("domain", str(exc))
            else:
                if product.tld and resolved["domain"].rsplit(".", 1)[1] != product.tld:
                    fail("domain", f"Die Domain passt nicht zum Produkt (.{product.tld}).")
    elif product.kind == "hosting":
        if raw_domain:  # the package's main domain (may be registered elsewhere)
            try:
                resolved["label"] = normalise_domain(raw_domain)
            except ValueError as exc:
                fail("domain", str(exc))
    elif raw_domain:
        fail("domain", "Für dieses Produkt wird keine Domain angegeben.")
    if label is not None:
        if product.kind in ("domain", "hosting"):
            fail("label", "Für dieses Produkt wird keine Bezeichnung angegeben; bitte „domain“ verwenden.")
        elif product.kind == "server" and not _HOSTNAME.match(label.lower()):
            fail("label", "Der Servername darf nur Buchstaben, Ziffern, Punkte und Bindestriche enthalten.")
        elif product.kind == "server" and label.lower().endswith("." + SERVER_DOMAIN):
            fail("label", f"Namen unter {SERVER_DOMAIN} vergeben wir selbst.")
        else:
            resolved["label"] = label.lower() if product.kind == "server" else label.strip()
    if item.get("usage") and product.kind != "server":
        fail("usage", "Eine Nutzung wird nur bei Servern angegeben.")
    option_ids = item.get("options") or []
    if option_ids and product.kind != "server":
        fail("options", "Optionen gibt es nur für Server.")
    elif option_ids:
        if len(option_ids) != len(set(option_ids)):
            fail("options", "Eine Option ist mehrfach angegeben.")
        for oid in option_ids:
            option = options.get(oid)
            if option is None or product.family not in option.attributes.get("applies_to", []):
                fail("options", f"Die Option {oid} gibt es für diesen Server nicht.")
            elif option not in resolved["options"]:
                resolved["options"].append(option)
    return resolved


def allocate_ips(session: Session, contract_id: int, count: int, pool: str, now: dt.datetime) -> list[str]:
    """Give ``count`` free addresses of the pool to a contract (first free ones).

    The address is the primary key: a concurrent order that took the same
    address makes this insert fail inside its savepoint and the next one is tried.
    """
    network = ipaddress.ip_network(pool, strict=False)
    used = set(session.execute(select(ip_addresses.c.address)).scalars())
    given: list[str] = []
    for host in network.hosts():
        if len(given) == count:
            break
        address = str(host)
        if address in used:
            continue
        try:
            with session.begin_nested():
                session.execute(ip_addresses.insert().values(address=address, contract_id=contract_id,
                                                             assigned_at=now))
            given.append(address)
        except IntegrityError:
            continue
    if len(given) < count:
        raise Unprocessable("Derzeit sind keine freien IP-Adressen verfügbar. Bitte wenden Sie sich an den Support.")
    return given


def resolve_items(session: Session,
                  items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Validate every item of an order (all errors at once) and check that its domains and
    server names are free. Returns ``(resolved, domains, names)``."""
    errors: dict[str, Any] = {}
    resolved: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        r = _validate_item(session, i, item, errors)
        if r is not None:
            resolved.append(r)
    if errors:
        raise ValidationFailed("Die Bestellung ist ungültig.", fields=errors)
    domains = [r["domain"] for r in resolved if r["domain"]]
    if len(domains) != len(set(domains)):
        raise ValidationFailed("Die Bestellung ist ungültig.",
                               fields={"items": ["Eine Domain ist mehrfach in der Bestellung."]})
    taken = session.execute(select(contracts.c.domain).where(
        contracts.c.domain.in_(domains), contracts.c.status != TERMINATED)).scalars().all()
    if taken:
        raise Conflict(f"Die Domain {taken[0]} ist bereits vergeben.", {"domain": taken[0]})
    names = [r["label"] for r in resolved if r["product"].kind == "server" and r["label"]]
    if len(names) != len(set(names)):
        raise ValidationFailed("Die Bestellung ist ungültig.",
                               fields={"items": ["Ein Servername ist mehrfach in der Bestellung."]})
    taken = session.execute(select(contracts.c.label).where(
        contracts.c.label.in_(names), contracts.c.kind == "server",
        contracts.c.status != TERMINATED)).scalars().all()
    if taken:
        raise Conflict(f"Der Servername {taken[0]} ist bereits vergeben.", {"server_name": taken[0]})
    return resolved, domains, names


def first_period(today: dt.date, months: int) -> tuple[dt.date, dt.date, dt.date]:
    """The first period of a contract ordered today: today .. the day before its next invoice."""
    next_invoice = today + relativedelta(months=months)
    return today, next_invoice - dt.timedelta(days=1), next_invoice


def quote_items(session: Session, customer_id: int, items: list[dict[str, Any]],
                today: dt.date | None = None) -> dict[str, Any]:
    """The ``order_placed`` items these order items would become (no contract ids, nothing
    written): what billing's quote prices exactly as it invoices the order."""
    today = today or berlin_today()
    resolved, _, _ = resolve_items(session, items)
    quoted = []
    for r in resolved:
        product, period = r["product"], r["period"]
        terms = contract_terms(product, period, r["options"], r["usage"])
        start, end, _ = first_period(today, period)
        quoted.append(event_item(None, product, r, terms, ACTIVE, start, end, ()))
    return {"customer_id": customer_id, "items": quoted}


def place_order(uow: UnitOfWork, customer_id: int, items: list[dict[str, Any]],
                idempotency_key: str | None = None, *, in_arrears: bool = False, today: dt.date | None = None,
                ip_pool: str = DEFAULT_IP_POOL) -> tuple[int, bool]:
    """Validate every item, then create the order, its contracts and ``order_placed``.

    All items or none. Contracts are ``active`` at once, or ``pending`` (until
    billing's ``payment_received``) when the customer is in arrears.
    Returns ``(order_id, created)``; the same idempotency key with the same items
    returns the first order, with other items it is refused (422).
    """
    session = uow.session
    existing = find_existing(session, customer_id, idempotency_key, items)
    if existing is not None:
        return existing, False
    today = today or berlin_today()
    resolved, domains, names = resolve_items(session, items)
    status = PENDING if in_arrears else ACTIVE
    now = utcnow()
    try:
        with session.begin_nested():
            order_id = session.execute(orders.insert().values(
                customer_id=customer_id, idempotency_key=idempotency_key,
                request_hash=request_hash(items), created_at=now).returning(orders.c.id)).scalar_one()
            event_items = []
            for r in resolved:
                product, period = r["product"], r["period"]
                terms = contract_terms(product, period, r["options"], r["usage"])
                start, end, next_invoice = first_period(today, period)
                contract_id = session.execute(contracts.insert().values(
                    customer_id=customer_id, order_id=order_id, product_id=product.id,
                    kind=product.kind, domain=r["domain"], label=r["label"],
                    description=terms["description"], options=terms["options"],
                    period_months=period, price_net=terms["price_net"], vat_rate=product.vat_rate,
                    notice_days=product.notice_days, status=status, start_date=today,
                    next_invoice_date=next_invoice, created_at=now,
                ).returning(contracts.c.id)).scalar_one()
                if product.kind == "server" and not r["label"]:
                    r["label"] = f"srv{contract_id}.{SERVER_DOMAIN}"
                    session.execute(contracts.update().where(contracts.c.id == contract_id)
                                    .values(label=r["label"]))
                ips = []
                count = int(product.attributes.get("ip_count", 0))
                if count:
                    ips = allocate_ips(session, contract_id, count, ip_pool, now)
                event_items.append(event_item(
                    contract_id, product, r, terms, status, start, end, ips))
    except IntegrityError:
        # A concurrent order won the race for a domain or server name (unique indexes) or the key.
        raise Conflict("Die Domain oder der Servername wurde soeben anderweitig bestellt."
                       if domains or names else "Die Bestellung wurde gleichzeitig schon einmal aufgegeben.") from None
    uow.emit("order_placed", {"order_id": order_id, "customer_id": customer_id, "items": event_items})
    return order_id, True

"""catalog's rules, free of nameko: domain names, orders, contracts."""
import datetime as dt
import hashlib
import json
from decimal import Decimal

import idna
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from kc_common.db import utcnow
from kc_common.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from kc_common.schemas import money
from kc_catalog.models import contracts, orders, products

ACTIVE = "active"


def normalise_domain(name):
    """IDNA 2008 A-label form of a registrable domain, or ValueError with a German reason."""
    name = name.strip().rstrip(".").lower()
    if not name or "." not in name:
        raise ValueError("Bitte geben Sie eine vollständige Domain an, z. B. beispiel.de.")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ValueError("Die Domain enthält ungültige Zeichen.")
    if len(ascii_name) > 253 or any(len(label) > 63 for label in ascii_name.split(".")):
        raise ValueError("Die Domain ist zu lang.")
    if ascii_name.count(".") != 1:
        raise ValueError("Bitte bestellen Sie die Domain ohne Subdomain (z. B. beispiel.de).")
    return ascii_name


def request_hash(items):
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def gross(net, vat_rate):
    return money(Decimal(net) * (1 + Decimal(vat_rate) / 100))


def place_order(uow, customer_id, items, idempotency_key=None, today=None):
    """Validate every item, then create the order, its contracts and ``order_placed``.

    All items or none. The same idempotency key with the same items returns the
    first order; with other items it is refused.
    """
    session = uow.session
    fingerprint = request_hash(items)
    if idempotency_key:
        existing = session.execute(select(orders).where(
            orders.c.customer_id == customer_id, orders.c.idempotency_key == idempotency_key)).first()
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise Unprocessable("Dieser Idempotency-Key wurde bereits für eine andere Bestellung verwendet.")
            return existing.id, False
    today = today or utcnow().date()
    resolved, errors = [], {}
    for i, item in enumerate(items):
        product = session.execute(select(products).where(products.c.id == item["product_id"])).first()
        if product is None:
            errors[f"items.{i}.product_id"] = ["Unbekanntes Produkt."]
            continue
        period = item.get("period_months") or product.periods[-1]
        if period not in product.periods:
            errors[f"items.{i}.period_months"] = [
                f"Zahlungsperiode {period} Monate wird für dieses Produkt nicht angeboten "
                f"(möglich: {', '.join(map(str, product.periods))})."]
            continue
        domain = None
        if product.kind == "domain":
            if not item.get("domain"):
                errors[f"items.{i}.domain"] = ["Bitte geben Sie die Domain an."]
                continue
            try:
                domain = normalise_domain(item["domain"])
            except ValueError as exc:
                errors[f"items.{i}.domain"] = [str(exc)]
                continue
            if domain.rsplit(".", 1)[1] != product.tld:
                errors[f"items.{i}.domain"] = [f"Die Domain passt nicht zum Produkt (.{product.tld})."]
                continue
        resolved.append((product, period, domain))
    if errors:
        raise ValidationFailed("Die Bestellung ist ungültig.", fields=errors)
    domains = [d for _, _, d in resolved if d]
    if len(domains) != len(set(domains)):
        raise ValidationFailed("Die Bestellung ist ungültig.",
                               fields={"items": ["Eine Domain ist mehrfach in der Bestellung."]})
    taken = session.execute(select(contracts.c.domain).where(
        contracts.c.domain.in_(domains), contracts.c.status != "terminated")).scalars().all()
    if taken:
        raise Conflict(f"Die Domain {taken[0]} ist bereits vergeben.", {"domain": taken[0]})

    now = utcnow()
    try:
        with session.begin_nested():
            order_id = session.execute(orders.insert().values(
                customer_id=customer_id, idempotency_key=idempotency_key,
                request_hash=fingerprint, created_at=now).returning(orders.c.id)).scalar_one()
            event_items = []
            for product, period, domain in resolved:
                price = money(product.price_net * period) if product.kind != "domain" \
                    else money(product.price_net * period / 12)
                contract_id = session.execute(contracts.insert().values(
                    customer_id=customer_id, order_id=order_id, product_id=product.id,
                    domain=domain, period_months=period, price_net=price,
                    vat_rate=product.vat_rate, status=ACTIVE, start_date=today,
                    next_invoice_date=today + relativedelta(months=period), created_at=now,
                ).returning(contracts.c.id)).scalar_one()
                event_items.append({
                    "contract_id": contract_id, "product_id": product.id, "product_name": product.name,
                    "kind": product.kind, "domain": domain, "period_months": period,
                    "price_net": price, "vat_rate": product.vat_rate,
                    "period_start": today,
                    "period_end": today + relativedelta(months=period) - dt.timedelta(days=1),
                })
    except IntegrityError:
        # A concurrent order won the race for a domain (unique index) or the key.
        raise Conflict("Die Domain wurde soeben anderweitig bestellt.")
    uow.emit("order_placed", {"order_id": order_id, "customer_id": customer_id,
                              "items": event_items})
    return order_id, True


def contract_view(row):
    return {
        "id": row.id, "product_id": row.product_id, "product_name": row.name, "kind": row.kind,
        "domain": row.domain, "period_months": row.period_months, "price_net": row.price_net,
        "price_gross": gross(row.price_net, row.vat_rate), "status": row.status,
        "start_date": row.start_date, "next_invoice_date": row.next_invoice_date,
    }


def _contract_query():
    return select(contracts, products.c.name, products.c.kind).join(
        products, products.c.id == contracts.c.product_id)


def order_contracts(session, customer_id, order_id):
    rows = session.execute(_contract_query().where(
        contracts.c.order_id == order_id, contracts.c.customer_id == customer_id)
        .order_by(contracts.c.id)).all()
    if not rows:
        raise NotFound("Bestellung nicht gefunden.")
    created = session.execute(select(orders.c.created_at).where(orders.c.id == order_id)).scalar_one()
    return {"id": order_id, "created_at": created, "contracts": [contract_view(r) for r in rows]}


def list_contracts(session, customer_id, *, page, per_page, q=None):
    query = _contract_query().where(contracts.c.customer_id == customer_id)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(func.lower(contracts.c.domain).like(like),
                                func.lower(products.c.name).like(like)))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(contracts.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [contract_view(r) for r in rows], "total": total, "page": page,
            "per_page": per_page}

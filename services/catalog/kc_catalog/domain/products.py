"""The product catalog and its management by staff.

A price change sets the product's price for everything booked from then on
(new orders and tariff changes) and is kept in ``product_prices``. A contract
keeps the price per period it was booked at (``contracts.price_net``), so
nothing already invoiced or running changes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from kc_catalog.domain.common import CATEGORY_KINDS, gross, period_price
from kc_catalog.models import product_prices, products
from kc_common.db import utcnow
from kc_common.errors import Conflict, NotFound, ValidationFailed

CATEGORY_OF = {kind: cat for cat, kinds in CATEGORY_KINDS.items() for kind in kinds}


def product_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "category": CATEGORY_OF.get(row.kind, "option"),
        "name": row.name, "description": row.description, "tld": row.tld,
        "family": row.family, "rank": row.rank, "attributes": row.attributes or {},
        "price_net": row.price_net, "price_gross": gross(row.price_net, row.vat_rate),
        "price_unit": "year" if row.kind == "domain" else "month", "vat_rate": row.vat_rate,
        "currency": "EUR", "periods": row.periods, "notice_days": row.notice_days,
        "active": row.active,
        "period_prices": [{"months": m, "price_net": period_price(row, m),
                           "price_gross": gross(period_price(row, m), row.vat_rate)} for m in row.periods],
    }


_KIND_ORDER = {"hosting": 0, "domain": 1, "server": 2, "option": 3, "addon": 4}


def list_products(session: Session, *, kind: str | None = None, family: str | None = None,
                  include_inactive: bool = False) -> dict[str, Any]:
    query = select(products)
    if kind:
        query = query.where(products.c.kind == kind)
    if family:
        query = query.where(products.c.family == family)
    if not include_inactive:
        query = query.where(products.c.active.is_(True))
    rows = session.execute(query).all()
    rows.sort(key=lambda r: (_KIND_ORDER.get(r.kind, 9), r.family or "", r.rank or 0, r.id))  # type: ignore[attr-defined]  # all() returns a list
    return {"items": [product_view(r) for r in rows]}


def check_product(data: dict[str, Any], kind: str) -> None:
    """Staff's product data (a new product, or the fields an update changes) against the
    catalog's rules: domains bill yearly only, no payment period twice, family and rank
    together (tariff changes move within a family by rank), an option names the families it
    applies to. All problems at once as ValidationFailed."""
    errors: dict[str, Any] = {}
    periods = data.get("periods")
    if periods is not None:
        if kind == "domain" and periods != [12]:
            errors["periods"] = ["Domains werden jährlich abgerechnet (nur 12)."]
        elif len(set(periods)) != len(periods):
            errors["periods"] = ["Eine Zahlungsperiode ist mehrfach angegeben."]
    if ("family" in data or "rank" in data) and (data.get("family") is None) != (data.get("rank") is None):
        errors["rank"] = ["Familie und Rang gehören zusammen (beide oder keins)."]
    if kind == "option" and data.get("attributes") is not None \
            and not data["attributes"].get("applies_to"):
        errors["attributes"] = ["Eine Option braucht applies_to (Produktfamilien)."]
    if errors:
        raise ValidationFailed(fields=errors)


def _record_price(session: Session, product_id: str, price_net: Decimal, vat_rate: Decimal, staff_id: str,
                  now: dt.datetime) -> None:
    session.execute(product_prices.insert().values(product_id=product_id, price_net=price_net,
                                                   vat_rate=vat_rate, valid_from=now,
                                                   changed_by=str(staff_id)))


def create_product(session: Session, data: dict[str, Any], staff_id: str) -> dict[str, Any]:
    if session.execute(select(products.c.id).where(products.c.id == data["id"])).first():
        raise Conflict("Ein Produkt mit dieser ID gibt es schon.", {"fields": {"id": ["vergeben"]}})
    if data.get("tld") and session.execute(select(products.c.id).where(products.c.tld == data["tld"])).first():
        raise Conflict("Für diese TLD gibt es schon ein Produkt.", {"fields": {"tld": ["vergeben"]}})
    check_product(data, data["kind"])
    data["periods"] = sorted(data["periods"])
    now = utcnow()
    session.execute(products.insert().values(updated_at=now, **data))
    _record_price(session, data["id"], data["price_net"], data["vat_rate"], staff_id, now)
    return get_product(session, data["id"])


def get_product(session: Session, product_id: str) -> dict[str, Any]:
    row = session.execute(select(products).where(products.c.id == product_id)).first()
    if row is None:
        raise NotFound("Produkt nicht gefunden.")
    return product_view(row)


def update_product(session: Session, product_id: str, data: dict[str, Any], staff_id: str) -> dict[str, Any]:
    row = session.execute(select(products).where(products.c.id == product_id).with_for_update()).first()
    if row is None:
        raise NotFound("Produkt nicht gefunden.")
    check_product(data, row.kind)
    if "periods" in data:
        data["periods"] = sorted(data["periods"])
    now = utcnow()
    if data:
        session.execute(products.update().where(products.c.id == product_id).values(updated_at=now, **data))
    price, vat = data.get("price_net", row.price_net), data.get("vat_rate", row.vat_rate)
    if price != row.price_net or vat != row.vat_rate:
        _record_price(session, product_id, price, vat, staff_id, now)
    return get_product(session, product_id)


def price_history(session: Session, product_id: str) -> dict[str, Any]:
    get_product(session, product_id)
    rows = session.execute(select(product_prices).where(product_prices.c.product_id == product_id)
                           .order_by(product_prices.c.valid_from.desc(), product_prices.c.id.desc())).all()
    return {"items": [{"price_net": r.price_net, "vat_rate": r.vat_rate, "valid_from": r.valid_from,
                       "changed_by": r.changed_by} for r in rows]}

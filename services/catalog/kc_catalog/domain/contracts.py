"""What the customer has: the three tables, cancellation, tariff change, the lifecycle jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any, cast

from dateutil.relativedelta import relativedelta
from sqlalchemy import Row, Select, func, or_, select
from sqlalchemy.orm import Session

from kc_catalog.domain.common import (
    ACTIVE,
    CANCELLED,
    CATEGORY_KINDS,
    PANEL_LABELS,
    PENDING,
    RUNNING,
    STATUS_TEXT,
    TERMINATED,
    check_transition,
    gross,
    period_price,
)
from kc_catalog.models import contracts, ip_addresses, login_tokens, orders, products
from kc_common.clock import berlin_today
from kc_common.db import UnitOfWork, utcnow
from kc_common.errors import Conflict, NotFound, Unprocessable

# ---------------------------------------------------------------- reading

def _query() -> Select[Any]:
    return select(contracts, products.c.name, products.c.family, products.c.attributes,
                  products.c.rank).join(products, products.c.id == contracts.c.product_id)


def _ips(session: Session, contract_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if contract_ids:
        for row in session.execute(select(ip_addresses).where(
                ip_addresses.c.contract_id.in_(contract_ids)).order_by(ip_addresses.c.address)):
            found.setdefault(row.contract_id, []).append(row.address)
    return found


def status_text(row: Row[Any]) -> str:
    if row.status == CANCELLED and row.end_date:
        return f"Gekündigt zum {row.end_date:%d.%m.%Y}"
    return STATUS_TEXT.get(row.status, row.status)


def contract_view(row: Row[Any], ips: Sequence[str] = (),
                  live_domains: Collection[str] = frozenset()) -> dict[str, Any]:
    """Everything the three tables and the detail need; each table's schema picks its columns."""
    attrs = row.attributes or {}
    panel = attrs.get("access")
    name = row.domain or row.label
    pending = None
    if row.pending_product_id:
        pending = {"product_id": row.pending_product_id, "price_net": row.pending_price_net,
                   "effective_date": row.pending_effective_date}
    return {
        "id": row.id, "product_id": row.product_id, "product_name": row.name, "kind": row.kind,
        "domain": row.domain, "label": row.label, "description": row.description,
        # Webhosting & Domains: "Domain" and "Paket"; a click on a domain opens its DNS zone.
        "name": name, "package": row.name,
        "dns_zone": name if row.kind in ("domain", "hosting") and name in live_domains else None,
        # Server
        "server_name": row.label if row.kind == "server" else None,
        "service_level": attrs.get("service_level"),
        "traffic_included_gb": attrs.get("traffic_gb") if row.kind == "server" else None,
        "ip_addresses": list(ips),
        "options": row.options or [],
        # Zugang
        "access": {"available": bool(panel) and row.status in RUNNING, "panel": panel,
                   "label": PANEL_LABELS.get(panel)} if panel else
                  {"available": False, "panel": None, "label": None},
        "period_months": row.period_months, "price_net": row.price_net,
        "price_gross": gross(row.price_net, row.vat_rate), "vat_rate": row.vat_rate, "currency": "EUR",
        "status": row.status, "status_text": status_text(row),
        "start_date": row.start_date, "next_invoice_date": row.next_invoice_date,
        "notice_days": row.notice_days, "end_date": row.end_date, "pending_change": pending,
    }


def _views(session: Session, customer_id: int, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    ips = _ips(session, [r.id for r in rows])
    # Only a domain or hosting contract can show a DNS zone: no statement without one.
    domains = {r.domain or r.label for r in rows if r.kind in ("domain", "hosting")} - {None}
    live_domains = set(session.execute(select(contracts.c.domain).where(
        contracts.c.customer_id == customer_id, contracts.c.domain.in_(domains),
        contracts.c.status != TERMINATED)).scalars()) if domains else set()
    return [contract_view(r, ips.get(r.id, ()), live_domains) for r in rows]


def list_contracts(session: Session, customer_id: int, *, page: int, per_page: int, q: str | None = None,
                   category: str | None = None, status: str | None = None) -> dict[str, Any]:
    """The customer's contracts (one of the guide's tables with ``category``), newest first.

    ``q`` searches domain, server name/label, package, description and IP addresses.
    """
    query = _query().where(contracts.c.customer_id == customer_id)
    if category:
        query = query.where(contracts.c.kind.in_(CATEGORY_KINDS[category]))
    if status:
        query = query.where(contracts.c.status == status)
    if q:
        like = f"%{q.lower()}%"
        ip_match = select(ip_addresses.c.contract_id).where(ip_addresses.c.address.like(like))
        query = query.where(or_(func.lower(contracts.c.domain).like(like),
                                func.lower(contracts.c.label).like(like),
                                func.lower(products.c.name).like(like),
                                func.lower(contracts.c.description).like(like),
                                contracts.c.id.in_(ip_match)))
    # The count rides on the page's rows (a window over the whole filtered set); only a page
    # past the end needs a statement of its own for it.
    rows = session.execute(query.add_columns(func.count().over().label("kc_total"))
                           .order_by(contracts.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    if rows:
        total = rows[0].kc_total
    else:
        total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    return {"items": _views(session, customer_id, rows), "total": total, "page": page,
            "per_page": per_page}


def load_contract(session: Session, customer_id: int, contract_id: int, lock: bool = False) -> Row[Any]:
    """The customer's own contract; another customer's is as unknown as a missing one."""
    query = _query().where(contracts.c.id == contract_id, contracts.c.customer_id == customer_id)
    if lock:
        query = query.with_for_update(of=contracts)
    row = session.execute(query).first()
    if row is None:
        raise NotFound("Vertrag nicht gefunden.")
    return row


def get_contract(session: Session, customer_id: int, contract_id: int) -> dict[str, Any]:
    return _views(session, customer_id, [load_contract(session, customer_id, contract_id)])[0]


def order_contracts(session: Session, customer_id: int, order_id: int) -> dict[str, Any]:
    rows = session.execute(_query().where(
        contracts.c.order_id == order_id, contracts.c.customer_id == customer_id)
        .order_by(contracts.c.id)).all()
    if not rows:
        raise NotFound("Bestellung nicht gefunden.")
    created = session.execute(select(orders.c.created_at).where(orders.c.id == order_id)).scalar_one()
    return {"id": order_id, "created_at": created, "contracts": _views(session, customer_id, rows)}


def current_period(row: Row[Any]) -> tuple[dt.date, dt.date]:
    """(start, end) of the invoiced period that runs now (ends the day before next invoice)."""
    end = row.next_invoice_date - dt.timedelta(days=1)
    return row.next_invoice_date - relativedelta(months=row.period_months), end


def _bump(row: Row[Any], **values: Any) -> Any:
    values.setdefault("version", row.version + 1)
    return contracts.update().where(contracts.c.id == row.id).values(**values)


# ---------------------------------------------------------------- cancellation (Kündigung)

def cancellation_end_date(row: Row[Any], today: dt.date) -> dt.date:
    """Last day of the term when cancelled today with the contract's notice period.

    The term renews by the payment period; a cancellation must arrive
    ``notice_days`` before a term ends, otherwise the next term end applies.
    A pending contract (nothing provided yet) ends today.
    """
    if row.status == PENDING:
        return today
    end = row.next_invoice_date - dt.timedelta(days=1)
    step = 1
    while end < today + dt.timedelta(days=row.notice_days):
        end = row.next_invoice_date + relativedelta(months=row.period_months * step) - dt.timedelta(days=1)
        step += 1
    return end


def cancellation_preview(session: Session, customer_id: int, contract_id: int,
                         today: dt.date | None = None) -> dict[str, Any]:
    row = load_contract(session, customer_id, contract_id)
    check_transition(row.status, CANCELLED)
    today = today or berlin_today()
    return {"contract_id": row.id, "notice_days": row.notice_days,
            "end_date": cancellation_end_date(row, today), "status": row.status}


def cancel(uow: UnitOfWork, customer_id: int, contract_id: int,
           today: dt.date | None = None) -> dict[str, Any]:
    """Cancel with the notice period: ``cancelled`` until ``end_date``, then terminated by the job."""
    session = uow.session
    row = load_contract(session, customer_id, contract_id, lock=True)
    check_transition(row.status, CANCELLED)
    today = today or berlin_today()
    end_date = cancellation_end_date(row, today)
    # A downgrade already announced (contract_changed) still happens if the term reaches it.
    session.execute(_bump(row, status=CANCELLED, cancelled_at=utcnow(), end_date=end_date))
    uow.emit("contract_cancelled", {"contract_id": row.id, "customer_id": customer_id, "kind": row.kind,
                                    "domain": row.domain, "end_date": end_date,
                                    "cancelled_on": today, "notice_days": row.notice_days})
    return get_contract(session, customer_id, contract_id)


# ---------------------------------------------------------------- tariff change (Tarifwechsel)

def tariff_options(session: Session, customer_id: int, contract_id: int) -> dict[str, Any]:
    """The family's other sizes, each marked upgrade (at once) or downgrade (at period end)."""
    row = load_contract(session, customer_id, contract_id)
    items = []
    if row.family:
        for p in session.execute(select(products).where(
                products.c.family == row.family, products.c.id != row.product_id,
                products.c.active.is_(True)).order_by(products.c.rank)).all():
            offered = row.period_months in p.periods
            items.append({"product_id": p.id, "name": p.name, "description": p.description,
                          "change": "upgrade" if p.rank > row.rank else "downgrade",
                          "price_net": period_price(p, row.period_months, _options(session, row))
                          if offered else None, "period_months": row.period_months,
                          "available": offered})
    return {"contract_id": row.id, "current_product_id": row.product_id, "items": items}


def _options(session: Session, row: Row[Any]) -> Sequence[Row[Any]]:
    ids = [o["product_id"] for o in row.options or []]
    if not ids:
        return []
    return session.execute(select(products).where(products.c.id.in_(ids))).all()


def _terms(product_id: str, name: str, price_net: Decimal, vat_rate: Decimal,
           period_months: int) -> dict[str, Any]:
    return {"product_id": product_id, "product_name": name, "price_net": price_net,
            "vat_rate": vat_rate, "period_months": period_months}


def plan_tariff_change(session: Session, row: Row[Any], product_id: str,
                       today: dt.date) -> tuple[dict[str, Any], Row[Any], Decimal]:
    """Check a tariff change of the contract ``row`` and compute it (nothing is written).

    Returns ``(change, target, new_price)``: ``change`` is the ``contract_changed`` data
    (old and new terms, effective date, the running period) that billing prorates.
    """
    target = session.execute(select(products).where(products.c.id == product_id,
                                                    products.c.active.is_(True))).first()
    change, new_price = tariff_change(row, target, _options(session, row), today)
    return change, cast(Row[Any], target), new_price  # tariff_change refused a missing target


def tariff_change(row: Row[Any], target: Row[Any] | None, options: Any,
                  today: dt.date) -> tuple[dict[str, Any], Decimal]:
    """The rules of a tariff change of the contract ``row`` (with its booked ``options``) to
    the active product ``target`` (None: unknown): only an active contract without a change
    already pending, only within its product family, only when the target offers the
    contract's payment period. An upgrade (higher rank) is effective ``today``, a downgrade
    with the next invoice. Returns ``(change, new_price)``; ``change`` is the
    ``contract_changed`` data."""
    if row.status != ACTIVE:
        raise Conflict("Ein Tarifwechsel ist nur bei aktiven Verträgen möglich.", {"status": row.status})
    if row.pending_product_id:
        raise Conflict("Für diesen Vertrag ist bereits ein Tarifwechsel vorgemerkt.",
                       {"pending_product_id": row.pending_product_id})
    if target is None:
        raise Unprocessable("Unbekanntes Produkt.", {"fields": {"product_id": ["Unbekanntes Produkt."]}})
    if not row.family or target.family != row.family or target.id == row.product_id:
        raise Unprocessable("Ein Tarifwechsel ist nur innerhalb derselben Produktfamilie möglich.",
                            {"fields": {"product_id": ["Nicht in derselben Produktfamilie."]}})
    if row.period_months not in target.periods:
        raise Unprocessable(f"Der Tarif wird mit der Zahlungsperiode {row.period_months} Monate nicht angeboten.",
                            {"fields": {"product_id": ["Zahlungsperiode nicht angeboten."]}})
    new_price = period_price(target, row.period_months, options)
    period_start, period_end = current_period(row)
    upgrade = target.rank > row.rank
    effective = today if upgrade else row.next_invoice_date
    old = _terms(row.product_id, row.name, row.price_net, row.vat_rate, row.period_months)
    new = _terms(target.id, target.name, new_price, target.vat_rate, row.period_months)
    change = {"contract_id": row.id, "customer_id": row.customer_id, "kind": row.kind,
              "change": "upgrade" if upgrade else "downgrade", "effective_date": effective,
              "period_start": period_start, "period_end": period_end, "old": old, "new": new}
    return change, new_price


def quote_tariff_change(session: Session, customer_id: int, contract_id: int, product_id: str,
                        today: dt.date | None = None) -> dict[str, Any]:
    """The ``contract_changed`` data a tariff change now would publish (for billing's quote)."""
    row = load_contract(session, customer_id, contract_id)
    change, _, _ = plan_tariff_change(session, row, product_id, today or berlin_today())
    return change


def change_tariff(uow: UnitOfWork, customer_id: int, contract_id: int, product_id: str,
                  today: dt.date | None = None) -> dict[str, Any]:
    """Upgrade (higher rank, same family): at once, billing prorates the rest of the period.
    Downgrade: at the end of the current period (the job applies it then).

    Either way ``contract_changed`` is published now with old and new terms and the
    effective date; the contract keeps its payment period.
    """
    session = uow.session
    row = load_contract(session, customer_id, contract_id, lock=True)
    today = today or berlin_today()
    change, target, new_price = plan_tariff_change(session, row, product_id, today)
    if change["change"] == "upgrade":
        session.execute(_bump(row, product_id=target.id, price_net=new_price, vat_rate=target.vat_rate,
                              description=upgraded_description(row, target)))
    else:
        session.execute(_bump(row, pending_product_id=target.id, pending_price_net=new_price,
                              pending_effective_date=change["effective_date"]))
    uow.emit("contract_changed", change)
    return get_contract(session, customer_id, contract_id)


def upgraded_description(row: Row[Any], target: Row[Any]) -> str:
    """The contract's description after an upgrade to ``target``: a server keeps its booked
    options and usage behind the new product's name, a hosting package takes the new
    package's description, anything else keeps its own."""
    if row.kind == "server":
        return " - ".join([target.name] + row.description.split(" - ")[len(row.name.split(" - ")):])[:500]
    if row.kind == "hosting":
        return target.description
    return row.description


# ---------------------------------------------------------------- events from billing

def on_invoice_issued(uow: UnitOfWork, invoice: dict[str, Any]) -> list[int]:
    """Next invoice date = last invoiced ``period_end`` + 1 day (never moves backwards)."""
    updated = []
    for contract_id, end in invoiced_period_ends(invoice).items():
        row = uow.session.execute(select(contracts).where(
            contracts.c.id == contract_id, contracts.c.customer_id == invoice["customer_id"])
            .with_for_update()).first()
        if row is None or row.status == TERMINATED:
            continue
        nxt = end + dt.timedelta(days=1)
        if nxt > row.next_invoice_date:
            uow.session.execute(_bump(row, next_invoice_date=nxt))
            updated.append(contract_id)
    return updated


def activate(uow: UnitOfWork, row: Row[Any]) -> None:
    check_transition(row.status, ACTIVE)
    uow.session.execute(_bump(row, status=ACTIVE))
    uow.emit("contract_activated", {"contract_id": row.id, "customer_id": row.customer_id})


def on_payment_received(uow: UnitOfWork, payment: dict[str, Any]) -> list[int]:
    """A payment of a customer in arrears activates the customer's pending contracts."""
    rows = uow.session.execute(select(contracts).where(
        contracts.c.customer_id == payment["customer_id"], contracts.c.status == PENDING)
        .order_by(contracts.c.id).with_for_update()).all()
    for row in rows:
        activate(uow, row)
    return [r.id for r in rows]


# ---------------------------------------------------------------- the scheduled job

def due_contract_ids(session: Session, today: dt.date) -> tuple[list[int], list[int]]:
    ended = session.execute(select(contracts.c.id).where(
        contracts.c.status == CANCELLED, contracts.c.end_date < today)).scalars().all()
    downgrades = session.execute(select(contracts.c.id).where(
        contracts.c.pending_product_id.is_not(None), contracts.c.pending_effective_date <= today,
        contracts.c.status.in_(RUNNING))).scalars().all()
    return list(ended), list(downgrades)


def terminate_one(uow: UnitOfWork, contract_id: int, today: dt.date) -> bool:
    """Terminate a cancelled contract whose term has ended (skipped if another instance has it)."""
    row = uow.session.execute(select(contracts).where(contracts.c.id == contract_id)
                              .with_for_update(skip_locked=True)).first()
    if row is None or row.status != CANCELLED or row.end_date >= today:
        return False
    check_transition(row.status, TERMINATED)
    uow.session.execute(_bump(row, status=TERMINATED, terminated_at=utcnow()))
    uow.session.execute(ip_addresses.delete().where(ip_addresses.c.contract_id == row.id))
    uow.emit("contract_terminated", {"contract_id": row.id, "customer_id": row.customer_id,
                                     "kind": row.kind, "domain": row.domain,
                                     "terminated_on": today, "end_date": row.end_date})
    return True


def apply_downgrade(uow: UnitOfWork, contract_id: int, today: dt.date) -> bool:
    row = uow.session.execute(select(contracts).where(contracts.c.id == contract_id)
                              .with_for_update(skip_locked=True)).first()
    if row is None or not row.pending_product_id or row.pending_effective_date > today \
            or row.status not in RUNNING or (row.end_date and row.end_date < row.pending_effective_date):
        return False
    target: Row[Any] = uow.session.execute(  # type: ignore[assignment]  # it exists: a foreign key
        select(products).where(products.c.id == row.pending_product_id)).first()
    values = {"product_id": target.id, "price_net": row.pending_price_net, "vat_rate": target.vat_rate,
              "pending_product_id": None, "pending_price_net": None, "pending_effective_date": None}
    if row.kind == "hosting":
        values["description"] = target.description
    elif row.kind == "server":
        old = uow.session.execute(select(products.c.name).where(products.c.id == row.product_id)).scalar_one()
        values["description"] = " - ".join([target.name] + row.description.split(" - ")[
            len(old.split(" - ")):])[:500]
    uow.session.execute(_bump(row, **values))
    return True


# ---------------------------------------------------------------- account closure

def cancel_all_for_closure(uow: UnitOfWork, data: dict[str, Any], today: dt.date | None = None) -> int:
    """identity's ``closure_requested``: every active or pending contract of the customer is
    cancelled by its own notice period (``contract_cancelled`` each); the job terminates them."""
    customer_id = int(data["customer_id"])
    ids = uow.session.execute(select(contracts.c.id).where(
        contracts.c.customer_id == customer_id, contracts.c.status.in_((ACTIVE, PENDING)))
        .order_by(contracts.c.id)).scalars().all()
    for contract_id in ids:
        cancel(uow, customer_id, contract_id, today=today)
    return len(ids)


def open_contracts(session: Session, customer_id: int) -> int:
    """How many of the customer's contracts have not been terminated yet."""
    return session.execute(select(func.count()).select_from(contracts).where(
        contracts.c.customer_id == customer_id, contracts.c.status != TERMINATED)).scalar_one()


def forget_customer(uow: UnitOfWork, data: dict[str, Any]) -> None:
    """identity's ``customer_erased``: login links go; the terminated contracts stay (the
    invoices refer to them; they hold no name or address)."""
    uow.session.execute(login_tokens.delete().where(login_tokens.c.customer_id == int(data["customer_id"])))


def invoiced_period_ends(invoice: dict[str, Any]) -> dict[int, dt.date]:
    """``{contract_id: the last period_end}`` an ``invoice_issued`` invoices (lines without a
    contract or a period, such as a refund, count for none)."""
    ends: dict[int, dt.date] = {}
    for line in invoice.get("lines") or []:
        if line.get("contract_id") and line.get("period_end"):
            end = dt.date.fromisoformat(line["period_end"])
            ends[line["contract_id"]] = max(end, ends.get(line["contract_id"], end))
    return ends

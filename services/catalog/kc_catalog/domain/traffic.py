"""Server traffic: daily reports from the infrastructure, per month used vs. included."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kc_catalog.domain.common import TERMINATED
from kc_catalog.domain.contracts import load_contract
from kc_catalog.models import contracts, products, server_traffic
from kc_common.clock import berlin_today
from kc_common.db import UnitOfWork, dialect_insert, utcnow
from kc_common.errors import Unprocessable, ValidationFailed

TREND_FLAT_PERCENT = Decimal("5")
HUNDREDTH = Decimal("0.01")


def _gb(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(HUNDREDTH, rounding=ROUND_HALF_UP)


def store_reports(session: Session, reports: list[dict[str, Any]]) -> int:
    """Insert or replace (contract_id, day) -> gb; a later report of a day replaces the earlier."""
    if not reports:
        return 0
    insert = dialect_insert(session)
    now = utcnow()
    stmt = insert(server_traffic).values([dict(r, reported_at=now) for r in reports])
    stmt = stmt.on_conflict_do_update(index_elements=["contract_id", "day"],
                                      set_={"gb": stmt.excluded.gb, "reported_at": stmt.excluded.reported_at})
    session.execute(stmt)
    return len(reports)


def report(uow: UnitOfWork, items: list[dict[str, Any]], today: dt.date | None = None) -> dict[str, int]:
    """Operators / infrastructure feed traffic per server (contract id or server name) and day.

    The batch is stored whole or not at all; every bad item is named.
    """
    session = uow.session
    today = today or berlin_today()
    errors, reports = {}, []
    for i, item in enumerate(items):
        query = select(contracts.c.id, contracts.c.kind, contracts.c.status)
        if item.get("contract_id") is not None:
            query = query.where(contracts.c.id == item["contract_id"])
            field = "contract_id"
        elif item.get("server_name"):
            query = query.where(contracts.c.label == item["server_name"].lower(),
                                contracts.c.kind == "server", contracts.c.status != TERMINATED)
            field = "server_name"
        else:
            errors[f"items.{i}.contract_id"] = ["contract_id oder server_name angeben."]
            continue
        row = session.execute(query).first()
        if row is None or row.kind != "server":
            errors[f"items.{i}.{field}"] = ["Kein Server mit dieser Angabe."]
            continue
        if item["day"] > today:
            errors[f"items.{i}.day"] = ["Der Tag liegt in der Zukunft."]
            continue
        reports.append({"contract_id": row.id, "day": item["day"], "gb": item["gb"]})
    if errors:
        raise ValidationFailed("Die Traffic-Meldung ist ungültig.", fields=errors)
    days = {(r["contract_id"], r["day"]) for r in reports}
    if len(days) != len(reports):
        raise ValidationFailed("Die Traffic-Meldung ist ungültig.",
                               fields={"items": ["Ein Server und Tag ist mehrfach gemeldet."]})
    return {"stored": store_reports(session, reports)}


def _month_sums(session: Session, contract_id: int, first_day: dt.date,
                last_day: dt.date) -> dict[Any, tuple[Decimal, int]]:
    month = func.to_char(server_traffic.c.day, "YYYY-MM") \
        if session.bind.dialect.name == "postgresql" else func.strftime("%Y-%m", server_traffic.c.day)  # type: ignore[union-attr]  # a bound session
    rows = session.execute(select(month.label("m"), func.sum(server_traffic.c.gb), func.count())
                           .where(server_traffic.c.contract_id == contract_id,
                                  server_traffic.c.day >= first_day, server_traffic.c.day <= last_day)
                           .group_by(month)).all()
    return {m: (Decimal(total), count) for m, total, count in rows}


def _trend(current_avg: Decimal, previous_avg: Decimal | None) -> dict[str, Any]:
    if not previous_avg:
        return {"direction": "flat" if not current_avg else "up", "change_percent": None}
    change = ((current_avg - previous_avg) / previous_avg * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    direction = "up" if change > TREND_FLAT_PERCENT else "down" if change < -TREND_FLAT_PERCENT else "flat"
    return {"direction": direction, "change_percent": change}


def usage(session: Session, customer_id: int, contract_id: int, months: int = 6, today: dt.date | None = None,
          daily: bool = True) -> dict[str, Any]:
    """Per month used vs. included (newest first), over-use flagged, trend and last 30 days
    (``daily``)."""
    row = load_contract(session, customer_id, contract_id)
    if row.kind != "server":
        raise Unprocessable("Traffic gibt es nur für Server.", {"contract_id": contract_id})
    today = today or berlin_today()
    included = Decimal((row.attributes or {}).get("traffic_gb") or 0)
    first_month = today.replace(day=1) - relativedelta(months=months - 1)
    sums = _month_sums(session, row.id, first_month, today)
    items, avgs = [], []
    for n in range(months):
        start = today.replace(day=1) - relativedelta(months=n)
        days_in_month = calendar.monthrange(start.year, start.month)[1]
        key = f"{start:%Y-%m}"
        used, reported = sums.get(key, (Decimal(0), 0))
        elapsed = today.day if n == 0 else days_in_month
        projected = used / elapsed * days_in_month if n == 0 and elapsed else used
        avgs.append(used / elapsed if elapsed else Decimal(0))
        items.append({
            "month": key, "used_gb": _gb(used), "included_gb": _gb(included),
            "percent": (used / included * 100).quantize(Decimal("0.1"), ROUND_HALF_UP) if included else None,
            "over_use": used > included, "over_gb": _gb(max(used - included, Decimal(0))),
            "days_reported": reported, "complete": n > 0,
            "projected_gb": _gb(projected), "projected_over_use": projected > included,
        })
    days = session.execute(select(server_traffic.c.day, server_traffic.c.gb).where(
        server_traffic.c.contract_id == row.id,
        server_traffic.c.day > today - dt.timedelta(days=30)).order_by(server_traffic.c.day)).all() \
        if daily else []
    return {"contract_id": row.id, "server_name": row.label, "included_gb": _gb(included),
            "months": items, "trend": _trend(avgs[0], avgs[1] if len(avgs) > 1 else None),
            "daily": [{"day": d, "gb": _gb(gb)} for d, gb in days]}


def overview(session: Session, customer_id: int, months: int = 2,
             today: dt.date | None = None) -> dict[str, Any]:
    """Traffic anzeigen: every running server of the customer, this month used vs. included,
    and the last ``months`` months (newest first) for the chart: one call for all servers."""
    today = today or berlin_today()
    rows = session.execute(select(contracts.c.id).join(products, products.c.id == contracts.c.product_id)
                           .where(contracts.c.customer_id == customer_id, contracts.c.kind == "server",
                                  contracts.c.status != TERMINATED).order_by(contracts.c.id)).scalars()
    items = []
    for contract_id in rows:
        u = usage(session, customer_id, contract_id, months=max(months, 2), today=today, daily=False)
        items.append({"contract_id": contract_id, "server_name": u["server_name"],
                      "included_gb": u["included_gb"], "current": u["months"][0],
                      "previous": u["months"][1], "trend": u["trend"], "months": u["months"][:months]})
    return {"items": items, "total": len(items)}

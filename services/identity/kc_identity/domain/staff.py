"""The back office: staff members, customer search and view, the owner change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, utcnow
from kc_identity.domain.av_agreement import av_status
from kc_identity.domain.common import hash_password
from kc_identity.domain.contacts import list_contacts
from kc_identity.domain.customers import address_view, get_customer_row, update_address
from kc_identity.models import customers, staff


def create_staff(session: Session, *, email: str, name: str, roles: Sequence[str], password: str) -> str:
    staff_id = str(uuid.uuid4())
    session.execute(staff.insert().values(id=staff_id, email=email.lower(), name=name, roles=list(roles),
                                          password_hash=hash_password(password), created_at=utcnow()))
    return staff_id


def search_customers(session: Session, q: str | None, page: int, per_page: int) -> dict[str, Any]:
    stmt = select(customers)
    q = (q or "").strip()
    if q:
        like = f"%{q.lower()}%"
        conds: list[Any] = [func.lower(customers.c.email).like(like), func.lower(customers.c.company).like(like),
                 func.lower(customers.c.last_name).like(like), func.lower(customers.c.first_name).like(like),
                 func.lower(customers.c.city).like(like)]
        if q.isdigit() and len(q) <= 18:
            conds.append(customers.c.id == int(q))
        stmt = stmt.where(or_(*conds))
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar()
    rows = session.execute(stmt.order_by(customers.c.id).limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [address_view(r) for r in rows], "total": total, "page": page, "per_page": per_page}


def staff_customer_view(session: Session, customer_id: int) -> dict[str, Any]:
    row = get_customer_row(session, customer_id)
    return {**address_view(row), "contacts": list_contacts(session, customer_id),
            "phone_password_set": row.phone_password_enc is not None,
            "ip_whitelist": list(row.ip_whitelist or []),
            "two_factor_enabled": row.totp_secret_enc is not None,
            "av_signed": av_status(session, customer_id)["signed"]}


def owner_change(uow: UnitOfWork, customer_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Complete an owner change (Inhaberwechsel): staff set the new company and, as the new
    owner brings them, any other address fields."""
    return update_address(uow, customer_id, dict(data, company=data.get("company") or ""), staff=True)

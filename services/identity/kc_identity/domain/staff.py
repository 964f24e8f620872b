"""The back office: staff members, customer search and view, the owner change."""
import uuid

from sqlalchemy import func, or_, select

from kc_common.db import utcnow
from kc_identity.domain.av_agreement import av_status
from kc_identity.domain.common import hash_password
from kc_identity.domain.contacts import list_contacts
from kc_identity.domain.customers import address_view, get_customer_row, update_address
from kc_identity.models import customers, staff


def create_staff(session, *, email, name, roles, password):
    staff_id = str(uuid.uuid4())
    session.execute(staff.insert().values(id=staff_id, email=email.lower(), name=name, roles=list(roles),
                                          password_hash=hash_password(password), created_at=utcnow()))
    return staff_id


def search_customers(session, q, page, per_page):
    stmt = select(customers)
    q = (q or "").strip()
    if q:
        like = f"%{q.lower()}%"
        conds = [func.lower(customers.c.email).like(like), func.lower(customers.c.company).like(like),
                 func.lower(customers.c.last_name).like(like), func.lower(customers.c.first_name).like(like),
                 func.lower(customers.c.city).like(like)]
        if q.isdigit() and len(q) <= 18:
            conds.append(customers.c.id == int(q))
        stmt = stmt.where(or_(*conds))
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar()
    rows = session.execute(stmt.order_by(customers.c.id).limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [address_view(r) for r in rows], "total": total, "page": page, "per_page": per_page}


def staff_customer_view(session, customer_id):
    row = get_customer_row(session, customer_id)
    return {**address_view(row), "contacts": list_contacts(session, customer_id),
            "phone_password_set": row.phone_password_enc is not None,
            "ip_whitelist": list(row.ip_whitelist or []),
            "two_factor_enabled": row.totp_secret_enc is not None,
            "av_signed": av_status(session, customer_id)["signed"]}


def owner_change(uow, customer_id, data):
    """Complete an owner change (Inhaberwechsel): staff set the new company and, as the new
    owner brings them, any other address fields."""
    return update_address(uow, customer_id, dict(data, company=data.get("company") or ""), staff=True)

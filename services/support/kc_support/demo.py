"""Demo data for ``make run`` (idempotent): one answered request of the demo customer.

Written as history, directly into the tables and without events: seeding must not
mail anybody. (Attachments are left out: the store is per deployment.)
"""
import datetime as dt

from sqlalchemy import select, update

from kc_common.db import utcnow
from kc_support.domain import STAFF_AUTHOR, format_number, new_reply_token
from kc_support.models import messages, requests

DEMO_CUSTOMER = 100001
SUBJECT = "SSL-Zertifikat für profihost-demo.de"


def seed(db, config):
    with db.unit_of_work() as uow:
        s = uow.session
        if s.execute(select(requests.c.id).where(requests.c.customer_id == DEMO_CUSTOMER,
                                                 requests.c.subject == SUBJECT)).first():
            return
        asked = utcnow() - dt.timedelta(days=2)
        answered = asked + dt.timedelta(hours=3)
        request_id = s.execute(requests.insert().values(
            customer_id=DEMO_CUSTOMER, author_name="Max Mustermann", author_kind="customer",
            author_email="demo@kundencenter.example", subject=SUBJECT, category="hosting",
            state="answered", reply_token=new_reply_token(), created_at=asked,
            updated_at=answered).returning(requests.c.id)).scalar_one()
        s.execute(update(requests).where(requests.c.id == request_id).values(number=format_number(request_id)))
        s.execute(messages.insert().values(
            request_id=request_id, kind="customer", author_name="Max Mustermann", via="web", created_at=asked,
            body="Guten Tag, der Browser meldet für profihost-demo.de ein abgelaufenes Zertifikat. "
                 "Können Sie das prüfen?"))
        s.execute(messages.insert().values(
            request_id=request_id, kind="staff", author_name=STAFF_AUTHOR, via="web", created_at=answered,
            body="Guten Tag Herr Mustermann, wir haben das Let's-Encrypt-Zertifikat erneuert; "
                 "bitte leeren Sie den Browser-Cache. Ist das Problem damit behoben?"))

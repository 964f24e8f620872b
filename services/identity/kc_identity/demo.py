"""Demo data for ``make run`` (idempotent)."""
import uuid

from sqlalchemy import select

from kc_common.db import utcnow
from kc_identity.domain.customers import create_customer, find_customer_by_login
from kc_identity.domain.passwords import set_phone_password
from kc_identity.domain.staff import create_staff
from kc_identity.models import contacts, staff

DEMO_EMAIL = "demo@kundencenter.example"
DEMO_PASSWORD = "Hafen-Leuchtturm-2026"
DEMO_PHONE_PASSWORD = "Elbe-Kran-42"  # only when the service's vault is configured (see seed)
DEMO_ADDRESS = {"street": "Musterstraße 12", "zip": "30159", "city": "Hannover", "country": "DE",
                "phone": "+4951112345678", "fax": "+4951112345679", "mobile": "+491712345678",
                "vat_id": "DE123456788"}
# Back office demo accounts (staff realm): e-mail, name, roles; password STAFF_PASSWORD.
STAFF_PASSWORD = "Team-Passwort-2026"
STAFF = [("admin@kundencenter.example", "Anna Admin", ["admin"]),
         ("support@kundencenter.example", "Sven Support", ["support"]),
         ("billing@kundencenter.example", "Berta Buchhaltung", ["billing"])]


def seed(db, config):
    with db.unit_of_work() as uow:
        if find_customer_by_login(uow.session, DEMO_EMAIL) is None:
            customer_id = create_customer(  # publishes customer_updated (relayed at start)
                uow, email=DEMO_EMAIL, company="Muster Webdesign GmbH",
                last_name="Mustermann", first_name="Max", password=DEMO_PASSWORD, **DEMO_ADDRESS)
            now = utcnow()
            uow.session.execute(contacts.insert().values(
                id=str(uuid.uuid4()), customer_id=customer_id, name="Erika Technik",
                email="technik@muster-webdesign.example", phone="+4951112345670",
                role="Technische Ansprechpartnerin", relation="internal", may_support=True,
                may_billing=False, created_at=now, updated_at=now))
            keys = (config or {}).get("PHONE_PASSWORD_KEYS")
            if keys:
                from kc_identity.vault import Vault
                set_phone_password(uow.session, customer_id, {
                    "phone_password": DEMO_PHONE_PASSWORD, "phone_password_repeat": DEMO_PHONE_PASSWORD},
                    Vault(keys))
        for email, name, roles in STAFF:
            if uow.session.execute(select(staff.c.id).where(staff.c.email == email)).first() is None:
                create_staff(uow.session, email=email, name=name, roles=roles,
                             password=STAFF_PASSWORD)

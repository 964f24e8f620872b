"""Demo data for ``make run`` (idempotent)."""
from sqlalchemy import select

from kc_identity import domain
from kc_identity.models import staff

DEMO_EMAIL = "demo@kundencenter.example"
DEMO_PASSWORD = "Demo-Passwort-2026"
# Back office demo accounts (staff realm): e-mail, name, roles; password STAFF_PASSWORD.
STAFF_PASSWORD = "Team-Passwort-2026"
STAFF = [("admin@kundencenter.example", "Anna Admin", ["admin"]),
         ("support@kundencenter.example", "Sven Support", ["support"]),
         ("billing@kundencenter.example", "Berta Buchhaltung", ["billing"])]


def seed(db, config):
    with db.unit_of_work() as uow:
        if domain.find_customer_by_login(uow.session, DEMO_EMAIL) is None:
            domain.create_customer(uow.session, email=DEMO_EMAIL, company="Muster Webdesign GmbH",
                                   last_name="Mustermann", first_name="Max",
                                   password=DEMO_PASSWORD)
        for email, name, roles in STAFF:
            if uow.session.execute(select(staff.c.id).where(staff.c.email == email)).first() is None:
                domain.create_staff(uow.session, email=email, name=name, roles=roles,
                                    password=STAFF_PASSWORD)

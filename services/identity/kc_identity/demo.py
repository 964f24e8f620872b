"""Demo data for ``make run`` (idempotent)."""
from kc_identity import domain

DEMO_EMAIL = "demo@kundencenter.example"
DEMO_PASSWORD = "Demo-Passwort-2026"


def seed(db, config):
    with db.unit_of_work() as uow:
        if domain.find_customer_by_login(uow.session, DEMO_EMAIL) is None:
            domain.create_customer(uow.session, email=DEMO_EMAIL, company="Muster Webdesign GmbH",
                                   last_name="Mustermann", first_name="Max",
                                   password=DEMO_PASSWORD)

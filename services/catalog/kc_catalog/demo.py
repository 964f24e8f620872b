"""Demo catalog for ``make run`` (idempotent). Prices EUR net; VAT 19 %."""
from decimal import Decimal

from sqlalchemy import select

from kc_catalog.models import products

VAT = Decimal("19.00")
PRODUCTS = [
    # id, kind, name, tld, price_net (per month; domains per year), periods
    ("domain-de", "domain", "Domain .de", "de", "9.90", [12]),
    ("domain-com", "domain", "Domain .com", "com", "14.90", [12]),
    ("domain-net", "domain", "Domain .net", "net", "16.90", [12]),
    ("domain-org", "domain", "Domain .org", "org", "16.90", [12]),
    ("domain-eu", "domain", "Domain .eu", "eu", "11.90", [12]),
    ("hosting-business", "hosting", "businesshosting", None, "12.90", [1, 3, 6, 12]),
    ("hosting-shop", "hosting", "shophosting", None, "24.90", [1, 3, 6, 12]),
]


def seed(db, config):
    with db.unit_of_work() as uow:
        have = set(uow.session.execute(select(products.c.id)).scalars())
        for pid, kind, name, tld, price, periods in PRODUCTS:
            if pid not in have:
                uow.session.execute(products.insert().values(
                    id=pid, kind=kind, name=name, tld=tld, price_net=Decimal(price),
                    vat_rate=VAT, periods=periods))

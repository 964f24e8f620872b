"""Demo data for ``make run`` (idempotent): a realistic catalog and the demo customer's
contracts as the guide's screenshots show them, plus generated server traffic. billing's
demo (``kc_billing.demo``) has invoiced and booked the payments of these contracts for a
year already, under the same contract ids.

Prices are EUR net per month (domains: per year); VAT 19 %.
"""
import datetime as dt
import random
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, text

from kc_catalog.models import contracts, ip_addresses, orders, product_prices, products
from kc_common.clock import berlin_today
from kc_common.db import utcnow

VAT = Decimal("19.00")
ALL = [1, 3, 6, 12]
YEAR = [12]


def _p(pid, kind, name, price, periods=ALL, *, tld=None, family=None, rank=None,
       description="", notice_days=30, **attributes):
    return {"id": pid, "kind": kind, "name": name, "price_net": Decimal(price), "periods": periods,
            "tld": tld, "family": family, "rank": rank, "description": description,
            "notice_days": notice_days, "attributes": attributes}


SERVERCON, RESELLER, CLOUD = "servercon", "reseller", "cloud"

PRODUCTS = [
    # Domains (per year) and Domainaufschaltung (connecting a domain registered elsewhere).
    _p("domain-de", "domain", "Domain .de", "9.90", YEAR, tld="de", description="Registrierung einer .de-Domain"),
    _p("domain-com", "domain", "Domain .com", "14.90", YEAR, tld="com", description="Registrierung einer .com-Domain"),
    _p("domain-net", "domain", "Domain .net", "16.90", YEAR, tld="net", description="Registrierung einer .net-Domain"),
    _p("domain-org", "domain", "Domain .org", "16.90", YEAR, tld="org", description="Registrierung einer .org-Domain"),
    _p("domain-eu", "domain", "Domain .eu", "11.90", YEAR, tld="eu", description="Registrierung einer .eu-Domain"),
    _p("domain-connect", "domain", "Domainaufschaltung", "6.00", YEAR, connect=True,
       description="Eine bei einem anderen Anbieter registrierte Domain bei uns aufschalten (DNS)"),
    # Webhosting: two families with sizes (tariff changes move within a family).
    _p("hosting-business-start", "hosting", "businesshosting Start", "6.90", family="businesshosting", rank=1,
       description="Webhosting für kleine Websites", access=SERVERCON, webspace_gb=25, mailboxes=25,
       databases=5, included_domains=1),
    _p("hosting-business", "hosting", "businesshosting", "12.90", family="businesshosting", rank=2,
       description="Webhosting für Unternehmenswebsites", access=SERVERCON, webspace_gb=100, mailboxes=100,
       databases=20, included_domains=2),
    _p("hosting-business-pro", "hosting", "businesshosting Pro", "19.90", family="businesshosting", rank=3,
       description="Webhosting für mehrere Unternehmenswebsites", access=SERVERCON, webspace_gb=250,
       mailboxes=500, databases=50, included_domains=5),
    _p("hosting-shop", "hosting", "shophosting", "24.90", family="shophosting", rank=1,
       description="Optimiertes Hosting für Onlineshops", access=SERVERCON, webspace_gb=150, mailboxes=100,
       databases=20, included_domains=2),
    _p("hosting-shop-pro", "hosting", "shophosting Pro", "39.90", family="shophosting", rank=2,
       description="Shophosting mit mehr Leistung", access=SERVERCON, webspace_gb=300, mailboxes=250,
       databases=50, included_domains=3),
    _p("hosting-shop-enterprise", "hosting", "shophosting Enterprise", "69.90", family="shophosting", rank=3,
       description="Shophosting für große Shops", access=SERVERCON, webspace_gb=600, mailboxes=1000,
       databases=100, included_domains=5),
    # Managed FlexServer (reseller admin) and Root FlexServer (cloud platform).
    _p("managed-starter", "server", "FlexServer - Starter", "59.00", family="managed-flexserver", rank=1,
       description="Managed FlexServer - 4 CPU Kerne - 8 GB RAM - 160 GB HDD", service_level="Managed",
       access=RESELLER, cpu_cores=4, ram_gb=8, disk_gb=160, disk_type="HDD", disk_speed="100%",
       traffic_gb=10000, ip_count=1),
    _p("managed-business", "server", "FlexServer - Business", "99.00", family="managed-flexserver", rank=2,
       description="Managed FlexServer - 6 CPU Kerne - 16 GB RAM - 300 GB HDD", service_level="Managed",
       access=RESELLER, cpu_cores=6, ram_gb=16, disk_gb=300, disk_type="HDD", disk_speed="100%",
       traffic_gb=20000, ip_count=1),
    _p("managed-premium", "server", "FlexServer - Premium", "169.00", family="managed-flexserver", rank=3,
       description="Managed FlexServer - 8 CPU Kerne - 32 GB RAM - 500 GB HDD", service_level="Managed",
       access=RESELLER, cpu_cores=8, ram_gb=32, disk_gb=500, disk_type="HDD", disk_speed="100%",
       traffic_gb=30000, ip_count=2),
    _p("root-s", "server", "Root FlexServer - 2 CPU Kerne - 2 GB RAM - 100 GB HDD - 100% HDD Speed", "14.90",
       family="root-flexserver", rank=1, description="Root FlexServer S", service_level="Root", access=CLOUD,
       cpu_cores=2, ram_gb=2, disk_gb=100, disk_type="HDD", disk_speed="100%", traffic_gb=300, ip_count=1),
    _p("root-m", "server", "Root FlexServer - 4 CPU Kerne - 8 GB RAM - 200 GB HDD - 100% HDD Speed", "29.90",
       family="root-flexserver", rank=2, description="Root FlexServer M", service_level="Root", access=CLOUD,
       cpu_cores=4, ram_gb=8, disk_gb=200, disk_type="HDD", disk_speed="100%", traffic_gb=1000, ip_count=1),
    _p("root-l", "server", "Root FlexServer - 8 CPU Kerne - 16 GB RAM - 400 GB SSD - 100% SSD Speed", "59.90",
       family="root-flexserver", rank=3, description="Root FlexServer L", service_level="Root", access=CLOUD,
       cpu_cores=8, ram_gb=16, disk_gb=400, disk_type="SSD", disk_speed="100%", traffic_gb=3000, ip_count=1),
    # Server options (booked with a server; part of its contract and description).
    _p("opt-hdd-speed-1", "option", "HDD Speed Upgrade I", "5.00", description="Schnellere Festplattenanbindung",
       applies_to=["managed-flexserver", "root-flexserver"], disk_speed="150%"),
    _p("opt-hdd-speed-2", "option", "HDD Speed Upgrade II", "10.00", description="Schnellere Festplattenanbindung",
       applies_to=["managed-flexserver", "root-flexserver"], disk_speed="200%"),
    _p("opt-hdd-speed-3", "option", "HDD Speed Upgrade III", "15.00", description="Schnellste Festplattenanbindung",
       applies_to=["managed-flexserver", "root-flexserver"], disk_speed="300%"),
    _p("opt-disk-20", "option", "+ 20 GB HDD", "4.00", description="Zusätzlicher Speicherplatz",
       applies_to=["managed-flexserver", "root-flexserver"], disk_gb=20),
    _p("opt-disk-100", "option", "+ 100 GB HDD", "15.00", description="Zusätzlicher Speicherplatz",
       applies_to=["managed-flexserver", "root-flexserver"], disk_gb=100),
    _p("opt-ram-4", "option", "+ 4 GB RAM", "8.00", description="Zusätzlicher Arbeitsspeicher",
       applies_to=["managed-flexserver", "root-flexserver"], ram_gb=4),
    _p("opt-cpu-2", "option", "+ 2 CPU Kerne", "12.00", description="Zusätzliche CPU Kerne",
       applies_to=["managed-flexserver", "root-flexserver"], cpu_cores=2),
    # Andere Produkte.
    _p("backup-daily", "addon", "Backup-Option Täglich", "4.90", description="Tägliche Sicherung, 14 Tage vorgehalten"),
    _p("backup-extended", "addon", "Backup-Option Erweitert", "9.90", description="Tägliche Sicherung, 90 Tage vorgehalten"),
    _p("ssl-dv", "addon", "SSL-Zertifikat Domain Validated", "2.49", YEAR, description="SSL-Zertifikat für eine Domain"),
    _p("ssl-wildcard", "addon", "SSL-Zertifikat Wildcard", "8.90", YEAR, description="SSL-Zertifikat für alle Subdomains"),
    _p("ssl-ev", "addon", "SSL-Zertifikat Extended Validation", "14.90", YEAR, description="SSL-Zertifikat mit erweiterter Prüfung"),
    _p("vpn-ipsec", "addon", "VPN/IPsec-Verbindung", "19.00", description="Site-to-Site-VPN (IPsec) ins Rechenzentrum"),
    _p("cdn-flex", "addon", "FlexCDN", "9.90", description="Content Delivery Network (FlexCDN)"),
    _p("ip-additional", "addon", "Zusätzliche IPv4-Adresse", "2.00", description="Eigene IP-Adresse", ip_count=1),
    _p("licence-plesk", "addon", "Lizenz Plesk Web Pro", "12.00", description="Lizenz für die Plesk Adminoberfläche"),
    _p("licence-mssql", "addon", "Lizenz Microsoft SQL Server Web", "18.00", description="Lizenz für MS SQL Server (Web Edition)"),
]

DEMO_CUSTOMER = 100001
DEMO_ORDER_KEY = "demo-seed"
SERVER_A, SERVER_B = "flex-demo-01.kundencenter-server.de", "root-demo-01.kundencenter-server.de"
# As in the guide's screenshots: product, label/domain, period, start date, options, IPs, usage.
# The ids are fixed: billing's demo (kc_billing.demo) has billed these contracts for a year
# already, under these ids (tests/test_demo_data.py checks that the two lists agree). The last
# one, an additional IP address, is ordered on the day of the seed ("start": None): its first
# month is the demo customer's small open amount.
DEMO_CONTRACTS = [
    {"id": 1, "product_id": "hosting-business", "label": "partnercenter.de", "period": 12,
     "start": dt.date(2019, 4, 7)},
    {"id": 2, "product_id": "hosting-shop", "label": "profihost-demo.de", "period": 12,
     "start": dt.date(2017, 11, 30)},
    {"id": 3, "product_id": "domain-connect", "domain": "profihost-demo.com", "period": 12,
     "start": dt.date(2019, 3, 13)},
    {"id": 4, "product_id": "domain-de", "domain": "profihost-demo.de", "period": 12, "start": dt.date(2018, 5, 24)},
    {"id": 5, "product_id": "managed-business", "label": SERVER_A, "period": 1,
     "start": dt.date(2019, 2, 20), "options": ["opt-hdd-speed-3", "opt-disk-20"],
     "usage": "Testserver Webhosting", "ips": ["178.250.9.79"]},
    {"id": 6, "product_id": "root-s", "label": SERVER_B, "period": 1, "start": dt.date(2018, 7, 20),
     "ips": ["178.250.8.83"]},
    {"id": 7, "product_id": "ssl-dv", "label": "www.profihost-demo.de", "period": 12, "start": dt.date(2020, 2, 10)},
    {"id": 8, "product_id": "backup-daily", "label": SERVER_A, "period": 1, "start": dt.date(2019, 2, 20)},
    {"id": 9, "product_id": "ip-additional", "label": SERVER_A, "period": 1, "start": None,
     "ips": ["178.250.9.80"]},
]


def seed(db, config, today=None):
    today = today or berlin_today()
    with db.unit_of_work() as uow:
        seed_products(uow.session)
    with db.unit_of_work() as uow:
        seed_demo_contracts(uow, today)
    with db.unit_of_work() as uow:
        top_up_demo_traffic(uow.session, today)


def seed_products(session):
    have = set(session.execute(select(products.c.id)).scalars())
    now = utcnow()
    for spec in PRODUCTS:
        if spec["id"] in have:
            continue
        session.execute(products.insert().values(vat_rate=VAT, active=True, updated_at=now, **spec))
        session.execute(product_prices.insert().values(
            product_id=spec["id"], price_net=spec["price_net"], vat_rate=VAT, valid_from=now,
            changed_by="demo"))


def current_period(start, period, today):
    """(period_start, next_invoice_date) of the running period of a contract begun at ``start``."""
    n = 0
    while start + relativedelta(months=period * (n + 1)) <= today:
        n += 1
    return start + relativedelta(months=period * n), start + relativedelta(months=period * (n + 1))


def seed_demo_contracts(uow, today):
    """The demo customer's contracts in one order, with ``order_placed``: dns creates the zones
    of the domains when it starts; billing knows the contracts already (its demo billed them)."""
    from kc_catalog.domain import orders as ordering  # noqa: PLC0415 (demo only)
    session = uow.session
    if session.execute(select(orders.c.id).where(orders.c.customer_id == DEMO_CUSTOMER,
                                                 orders.c.idempotency_key == DEMO_ORDER_KEY)).first():
        return
    ids = [spec["id"] for spec in DEMO_CONTRACTS]
    taken = session.execute(select(contracts.c.id).where(contracts.c.id.in_(ids))).scalars().all()
    if taken:
        raise RuntimeError(f"kc_catalog.demo: contract ids {sorted(taken)} are in use; the demo contracts "
                           "(billed under ids 1-9 by billing's demo) need a fresh catalog database")
    now = utcnow()
    order_id = session.execute(orders.insert().values(
        customer_id=DEMO_CUSTOMER, idempotency_key=DEMO_ORDER_KEY, request_hash="demo",
        created_at=now).returning(orders.c.id)).scalar_one()
    catalog = {r.id: r for r in session.execute(select(products)).all()}
    items = []
    for spec in DEMO_CONTRACTS:
        product = catalog[spec["product_id"]]
        options = [catalog[o] for o in spec.get("options", [])]
        start = spec["start"] or today
        period_start, next_invoice = current_period(start, spec["period"], today)
        terms = ordering.contract_terms(product, spec["period"], options, spec.get("usage"))
        contract_id = session.execute(contracts.insert().values(
            id=spec["id"], customer_id=DEMO_CUSTOMER, order_id=order_id, product_id=product.id, kind=product.kind,
            domain=spec.get("domain"), label=spec.get("label"), description=terms["description"],
            options=terms["options"], period_months=spec["period"], price_net=terms["price_net"],
            vat_rate=product.vat_rate, notice_days=product.notice_days, status="active",
            start_date=start, next_invoice_date=next_invoice, created_at=now,
        ).returning(contracts.c.id)).scalar_one()
        for address in spec.get("ips", []):
            session.execute(ip_addresses.insert().values(address=address, contract_id=contract_id,
                                                         assigned_at=now))
        items.append(ordering.event_item(contract_id, product, spec, terms, "active", period_start,
                                         next_invoice - dt.timedelta(days=1), spec.get("ips", [])))
    if session.get_bind().dialect.name == "postgresql":  # the ids were given: move the sequence past them
        session.execute(text("SELECT setval(pg_get_serial_sequence('contracts', 'id'), "
                             "(SELECT max(id) FROM contracts))"))
    uow.emit("order_placed", {"order_id": order_id, "customer_id": DEMO_CUSTOMER, "items": items})


def generate_traffic(session, contract_id, included_gb, start, end, seed=0, grown=False):
    """Demo generator: plausible daily traffic (weekday dips, growth, the month before
    ``end`` busy so that over-use shows)."""
    from kc_catalog.domain import traffic  # noqa: PLC0415 (demo only)
    rng = random.Random(seed)
    daily = Decimal(included_gb) / 30
    busy = end.replace(day=1) - dt.timedelta(days=1)
    reports, day, i = [], start, 180 if grown else 0
    while day <= end:
        factor = 0.55 + 0.3 * min(i / 180, 1) + rng.uniform(-0.12, 0.12)
        if day.weekday() >= 5:
            factor *= 0.7
        if (day.year, day.month) == (busy.year, busy.month):
            factor *= 1.6
        reports.append({"contract_id": contract_id, "day": day,
                        "gb": (daily * Decimal(str(round(factor, 3)))).quantize(Decimal("0.001"))})
        day += dt.timedelta(days=1)
        i += 1
    traffic.store_reports(session, reports)


def top_up_demo_traffic(session, today):
    """Each ``make run`` fills the demo servers' traffic up to yesterday (idempotent)."""
    from sqlalchemy import func  # noqa: PLC0415

    from kc_catalog.models import server_traffic  # noqa: PLC0415
    rows = session.execute(
        select(contracts.c.id, contracts.c.product_id, func.max(server_traffic.c.day))
        .outerjoin(server_traffic, server_traffic.c.contract_id == contracts.c.id)
        .where(contracts.c.customer_id == DEMO_CUSTOMER, contracts.c.kind == "server",
               contracts.c.status != "terminated")
        .group_by(contracts.c.id, contracts.c.product_id)).all()
    included = {p.id: p.attributes.get("traffic_gb", 0) for p in session.execute(
        select(products.c.id, products.c.attributes).where(products.c.kind == "server")).all()}
    yesterday = today - dt.timedelta(days=1)
    for contract_id, product_id, last in rows:
        start = (last + dt.timedelta(days=1)) if last else today - relativedelta(months=6)
        if start <= yesterday:
            generate_traffic(session, contract_id, included.get(product_id, 0), start, yesterday,
                             seed=contract_id * 100000 + start.toordinal(), grown=last is not None)

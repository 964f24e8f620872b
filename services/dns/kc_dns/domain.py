"""dns's rules, free of nameko: zones, default records, serials."""
import datetime as dt

import idna
from sqlalchemy import select

from kc_common.db import utcnow
from kc_common.errors import NotFound
from kc_dns.models import records, zones


def initial_serial(today):
    return int(today.strftime("%Y%m%d")) * 100 + 1


def default_records(defaults):
    ttl = int(defaults["ttl"])
    rows = [("@", "SOA", ttl, f"{defaults['nameservers'][0]} {defaults['hostmaster']} "
                              f"{{serial}} 10800 3600 604800 3600")]
    rows += [("@", "NS", ttl, ns) for ns in defaults["nameservers"]]
    rows += [("@", "A", ttl, defaults["web_ipv4"]), ("www", "A", ttl, defaults["web_ipv4"]),
             ("@", "AAAA", ttl, defaults["web_ipv6"]), ("www", "AAAA", ttl, defaults["web_ipv6"]),
             ("@", "MX", ttl, f"10 {defaults['mx']}")]
    return rows


def create_zones_for_order(uow, order, defaults, today=None):
    """A zone with default records for every domain of an order (``order_placed``)."""
    today = today or utcnow().date()
    created = []
    for item in order["items"]:
        if item.get("kind") != "domain" or not item.get("domain"):
            continue
        name = item["domain"]
        if uow.session.execute(select(zones.c.id).where(zones.c.name == name)).first():
            continue
        serial = initial_serial(today)
        zone_id = uow.session.execute(zones.insert().values(
            name=name, customer_id=order["customer_id"], contract_id=item["contract_id"],
            serial=serial, created_at=utcnow()).returning(zones.c.id)).scalar_one()
        for rname, rtype, ttl, content in default_records(defaults):
            uow.session.execute(records.insert().values(
                zone_id=zone_id, name=rname, type=rtype, ttl=ttl,
                content=content.replace("{serial}", str(serial))))
        uow.emit("zone_changed", {"zone": name, "serial": serial, "customer_id": order["customer_id"]})
        created.append(name)
    return created


def get_zone(session, customer_id, name):
    """The customer's own zone; another customer's is as unknown as a missing one."""
    try:
        name = idna.encode(name.strip().rstrip(".").lower(), uts46=True).decode()
    except idna.IDNAError:
        raise NotFound("Zone nicht gefunden.")
    zone = session.execute(select(zones).where(zones.c.name == name,
                                               zones.c.customer_id == customer_id)).first()
    if zone is None:
        raise NotFound("Zone nicht gefunden.")
    rows = session.execute(select(records).where(records.c.zone_id == zone.id)
                           .order_by(records.c.name, records.c.type, records.c.id)).all()
    return {"name": zone.name, "serial": zone.serial, "version": zone.version,
            "records": [r._mapping for r in rows]}

"""dns's rules over the database, free of nameko: zones, change sets, serials, zone files.

Concurrency: every change first locks the zone row and compares the caller's
version (``If-Match``) with the zone's: a change set does both, and raises
version and serial, in one ``UPDATE … WHERE version = :if_match``; an import
by ``SELECT … FOR UPDATE``. A stale version is a 409 and nothing is written; a
current one is validated against the records read *under the lock* (only the
names the rules need), written, and the version and serial rise by one in the
same transaction (a rejected change set rolls the raise back with the rest).
Two sessions can therefore never both apply a change to the same version, and
a zone never holds duplicates or records that the rules reject.

Serial (``YYYYMMDDnn``): each applied change set sets it to
``max(old + 1, today·100 + 1)``. The 100th change of a day overflows ``nn``
into the next day's prefix (``2026112699`` → ``2026112700``); the serial
keeps rising by one per change, and once the calendar catches up the date
form resumes. It never falls, so secondaries always see a newer zone.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from kc_common.db import UnitOfWork, utcnow
from kc_common.errors import Conflict, NotFound, ValidationFailed
from kc_dns import changeset, rules, zonefile
from kc_dns.changeset import Plan, Rrset
from kc_dns.models import records, zones
from kc_dns.rules import Policy, RuleError, display


def initial_serial(today: dt.date) -> int:
    return int(today.strftime("%Y%m%d")) * 100 + 1


def next_serial(old: int, today: dt.date) -> int:
    """The serial after one more applied change set (see the module docstring)."""
    return max(int(old) + 1, initial_serial(today))


def default_records(defaults: Mapping[str, Any]) -> list[tuple[str, str, int, str]]:
    ttl = int(defaults["ttl"])
    rows = [("@", "SOA", ttl, f"{defaults['nameservers'][0]} {defaults['hostmaster']} "
                              f"{{serial}} 10800 3600 604800 3600")]
    rows += [("@", "NS", ttl, ns) for ns in defaults["nameservers"]]
    rows += [("@", "A", ttl, defaults["web_ipv4"]), ("www", "A", ttl, defaults["web_ipv4"]),
             ("@", "AAAA", ttl, defaults["web_ipv6"]), ("www", "AAAA", ttl, defaults["web_ipv6"]),
             ("@", "MX", ttl, f"10 {defaults['mx']}")]
    return rows


def normalise_zone(name: str) -> str:
    """A-label of a zone name as the customer typed it; unknown names are simply not found."""
    try:
        return rules.zone_name(name or "")
    except RuleError:
        raise NotFound("Zone nicht gefunden.") from None


def create_zones_for_order(uow: UnitOfWork, order: dict[str, Any], defaults: Mapping[str, Any],
                           today: dt.date | None = None) -> list[str]:
    """A zone with default records for every domain of an order (``order_placed``)."""
    today = today or utcnow().date()
    created = []
    for item in order["items"]:
        if item.get("kind") != "domain" or not item.get("domain"):
            continue
        try:
            name = rules.zone_name(item["domain"])
        except RuleError:
            continue
        if uow.session.execute(select(zones.c.id).where(zones.c.name == name)).first():
            continue
        serial = initial_serial(today)
        zone_id = uow.session.execute(zones.insert().values(
            name=name, customer_id=order["customer_id"], contract_id=item.get("contract_id"),
            serial=serial, created_at=utcnow()).returning(zones.c.id)).scalar_one()
        uow.session.execute(records.insert(), [
            dict(zone_id=zone_id, name=rname, type=rtype, ttl=ttl,
                 content=content.replace("{serial}", str(serial)))
            for rname, rtype, ttl, content in default_records(defaults)])
        uow.emit("zone_changed", {"zone": name, "serial": serial, "customer_id": order["customer_id"],
                                  "action": "created"})
        created.append(name)
    return created


def remove_zone_for_contract(uow: UnitOfWork, data: dict[str, Any]) -> str | None:
    """``contract_terminated`` of a domain: its zone goes (records with it)."""
    if data.get("kind") not in (None, "domain"):
        return None
    zone = None
    if data.get("contract_id") is not None:
        zone = uow.session.execute(select(zones).where(
            zones.c.contract_id == data["contract_id"],
            zones.c.customer_id == data["customer_id"]).with_for_update()).first()
    if zone is None and data.get("domain"):
        try:
            name = rules.zone_name(data["domain"])
        except RuleError:
            return None
        zone = uow.session.execute(select(zones).where(
            zones.c.name == name, zones.c.customer_id == data["customer_id"]).with_for_update()).first()
    if zone is None:
        return None
    uow.session.execute(records.delete().where(records.c.zone_id == zone.id))
    uow.session.execute(zones.delete().where(zones.c.id == zone.id))
    uow.emit("zone_changed", {"zone": zone.name, "serial": zone.serial,
                              "customer_id": zone.customer_id, "action": "removed"})
    return zone.name


def remove_zones_of_customer(uow: UnitOfWork, data: dict[str, Any]) -> list[str]:
    """identity's ``customer_erased``: any zone left (normally removed with its contract) goes."""
    removed = []
    for zone in uow.session.execute(select(zones).where(
            zones.c.customer_id == int(data["customer_id"])).with_for_update()).all():
        uow.session.execute(records.delete().where(records.c.zone_id == zone.id))
        uow.session.execute(zones.delete().where(zones.c.id == zone.id))
        uow.emit("zone_changed", {"zone": zone.name, "serial": zone.serial,
                                  "customer_id": zone.customer_id, "action": "removed"})
        removed.append(zone.name)
    return removed


# The statements of a change set, built once (SQLAlchemy then finds their compiled form in its
# cache by a cheap key); executed on the session's connection (Core), inside its transaction.
_ZONE = select(zones).where(zones.c.name == bindparam("zone_name"),
                            zones.c.customer_id == bindparam("customer_id"))
_ZONE_LOCKED = _ZONE.with_for_update()
_ROWS = select(records.c.id, records.c.name, records.c.type, records.c.ttl, records.c.content)
_AT_NAME = records.c.name == bindparam("name")
_AT_NAMES = records.c.name.in_(bindparam("names", expanding=True))
_IS_SOA = and_(records.c.name == "@", records.c.type == "SOA")
_ROWS_AT_NAME = _ROWS.where(records.c.zone_id == bindparam("zone_id"), _AT_NAME).order_by(records.c.id)
_ROWS_AT = _ROWS.where(records.c.zone_id == bindparam("zone_id"), _AT_NAMES).order_by(records.c.id)
# the same, plus the SOA (whose serial the change set rises): one query instead of two
_ROWS_AT_NAME_SOA = _ROWS.where(records.c.zone_id == bindparam("zone_id"),
                                or_(_AT_NAME, _IS_SOA)).order_by(records.c.id)
_ROWS_AT_SOA = _ROWS.where(records.c.zone_id == bindparam("zone_id"),
                           or_(_AT_NAMES, _IS_SOA)).order_by(records.c.id)
_SOA = select(records.c.id, records.c.content).where(records.c.zone_id == bindparam("zone_id"), _IS_SOA)
_DELETE_ID = records.delete().where(records.c.id == bindparam("record_id"))
_DELETE_IDS = records.delete().where(records.c.id.in_(bindparam("ids", expanding=True)))
_INSERT = records.insert()
_INSERT_RETURNING = records.insert().returning(records.c.id, records.c.name, records.c.type,
                                               records.c.ttl, records.c.content)
_SET_CONTENT = records.update().where(records.c.id == bindparam("record_id")) \
    .values(content=bindparam("new_content"))
_BUMP_ZONE = zones.update().where(zones.c.id == bindparam("zone_id")) \
    .values(serial=bindparam("new_serial"), version=bindparam("new_version"))
# apply_changes: lock, version check and bump in one statement; serial = max(old + 1, today·100 + 1)
_BUMP_IF_CURRENT = zones.update().where(
    zones.c.name == bindparam("zone_name"), zones.c.customer_id == bindparam("owner_id"),
    zones.c.version == bindparam("expected")).values(
    version=zones.c.version + 1,
    serial=case((zones.c.serial + 1 > bindparam("floor"), zones.c.serial + 1),
                else_=bindparam("floor"))).returning(*zones.c)


def _zone(session: Session, customer_id: int, name: str, lock: bool = False) -> Row[Any]:
    """The customer's own zone; another customer's is as unknown as a missing one."""
    zone = session.connection().execute(_ZONE_LOCKED if lock else _ZONE, {
        "zone_name": normalise_zone(name), "customer_id": customer_id}).first()
    if zone is None:
        raise NotFound("Zone nicht gefunden.")
    return zone


def _managed(record: Mapping[str, Any]) -> bool:
    return record["type"] == "SOA" or (record["type"] == "NS" and record["name"] == "@")


_ZONE_ROWS = _ROWS.where(records.c.zone_id == bindparam("zone_id"))


def _zone_rows(session: Session, zone_id: int, names: Collection[str] | None = None,
               sort: bool = True) -> list[dict[str, Any]]:
    """The zone's records as dicts, in zone-file order (``sort``)."""
    stmt = _ZONE_ROWS if names is None else _ZONE_ROWS.where(records.c.name.in_(sorted(names)))
    rows = [{"id": i, "name": n, "type": t, "ttl": ttl, "content": c}
            for i, n, t, ttl, c in session.connection().execute(stmt, {"zone_id": zone_id})]
    return sorted(rows, key=zonefile._sort_key) if sort else rows


def _zone_view(session: Session, zone: Row[Any]) -> dict[str, Any]:
    return {"name": zone.name, "name_unicode": display(zone.name), "serial": zone.serial,
            "version": zone.version, "etag": f'"{zone.version}"',
            "records": [dict(r, managed=_managed(r)) for r in _zone_rows(session, zone.id)]}


def get_zone(session: Session, customer_id: int, name: str) -> dict[str, Any]:
    return _zone_view(session, _zone(session, customer_id, name))


def list_zones(session: Session, customer_id: int, page: int = 1, per_page: int = 10) -> dict[str, Any]:
    total = session.execute(select(func.count()).select_from(zones)
                            .where(zones.c.customer_id == customer_id)).scalar_one()
    counts = (select(records.c.zone_id, func.count().label("n")).group_by(records.c.zone_id)
              .subquery())
    rows = session.execute(
        select(zones, func.coalesce(counts.c.n, 0).label("record_count"))
        .outerjoin(counts, counts.c.zone_id == zones.c.id)
        .where(zones.c.customer_id == customer_id).order_by(zones.c.name)
        .offset((page - 1) * per_page).limit(per_page)).all()
    return {"items": [{"name": r.name, "name_unicode": display(r.name), "serial": r.serial,
                       "version": r.version, "record_count": r.record_count} for r in rows],
            "total": total, "page": page, "per_page": per_page}


class SqlSource:
    """The zone's records as :func:`changeset.plan` reads them (only what a rule needs)."""

    def __init__(self, session: Session, zone_id: int, zone_name: str, *, with_soa: bool = False) -> None:
        self.session, self.zone_id, self.zone = session, zone_id, zone_name
        self.conn = session.connection()
        # with_soa: the first read also fetches the zone's SOA rows (``soa``: [(id, content)])
        self.with_soa = with_soa
        self.soa: list[tuple[Any, Any]] | None = None

    def _sets(self, rows: Sequence[Any]) -> dict[Any, Any]:
        sets: dict[tuple[str, str], Rrset] = {}
        for r in rows:
            s = sets.setdefault((r.name, r.type), Rrset(r.ttl, [], []))
            s.records.append(r.content)
            s.ids.append(r.id)
        return sets

    def rows_at(self, names: Collection[str]) -> dict[Any, Any]:
        if not names:
            return {}
        soa = self.with_soa and self.soa is None
        if len(names) == 1:   # the usual case; an expanding IN is compiled at each execution
            rows = self.conn.execute(_ROWS_AT_NAME_SOA if soa else _ROWS_AT_NAME, {
                "zone_id": self.zone_id, "name": next(iter(names))}).all()
        else:
            rows = self.conn.execute(_ROWS_AT_SOA if soa else _ROWS_AT, {
                "zone_id": self.zone_id, "names": sorted(names)}).all()
        if soa:
            self.soa = [(r.id, r.content) for r in rows if r.name == "@" and r.type == "SOA"]
            rows = [r for r in rows if r.name in names]
        return self._sets(rows)

    def descendants(self, rel: str) -> Any:
        if rel == "@":
            return []
        pattern = "%." + re.sub(r"([\\%_])", r"\\\1", rel)
        return {(r.name, r.type) for r in self.session.execute(
            select(records.c.name, records.c.type).where(
                records.c.zone_id == self.zone_id,
                records.c.name.like(pattern, escape="\\"))).all()}

    def target_records(self) -> list[Any]:
        """All MX/NS/SRV records of the zone (who points where): their number, not the zone's size,
        bounds this read."""
        return [((r.name, r.type), r.content) for r in self.session.execute(
            select(records.c.name, records.c.type, records.c.content).where(
                records.c.zone_id == self.zone_id,
                records.c.type.in_(sorted(changeset.TARGET_TYPES)))).all()]

    def keys(self) -> set[tuple[str, str]]:
        return {(r.name, r.type) for r in self.session.execute(
            select(records.c.name, records.c.type).where(records.c.zone_id == self.zone_id)
            .distinct()).all()}


def parse_if_match(headers: dict[str, Any]) -> int:
    value = ((headers or {}).get("If-Match") or "").strip()
    if not value:
        raise ValidationFailed("Bitte senden Sie die Version der Zone mit (Kopfzeile If-Match), "
                               "damit keine fremde Änderung überschrieben wird.",
                               fields={"If-Match": ["Fehlt: die Version (ETag) der Zone."]})
    m = re.fullmatch(r'(?:W/)?"?(\d{1,9})"?', value)
    if not m:
        raise ValidationFailed("Die Kopfzeile If-Match ist ungültig.",
                               fields={"If-Match": [f"„{value}“ ist keine Version dieser Zone."]})
    return int(m.group(1))


def _check_version(zone: Row[Any], expected: int | None) -> None:
    if zone.version != expected:
        raise Conflict(f"Die Zone {display(zone.name)} wurde inzwischen geändert (Version "
                       f"{zone.version}, Ihre Änderung beruht auf Version {expected}). Es wurde "
                       f"nichts gespeichert. Bitte laden Sie die Zone neu.",
                       {"current_version": zone.version})


def _problems_error(problems: Sequence[Any]) -> ValidationFailed:
    fields: dict[str, list[str]] = {}
    for p in problems:
        fields.setdefault(p.field, []).append(p.message)
    n = len(problems)
    return ValidationFailed(f"Die Änderungen wurden nicht gespeichert: "
                            f"{'ein Problem' if n == 1 else f'{n} Probleme'}.", fields=fields)


def _write(conn: Connection, zone_id: int, plan: Plan, returning: bool = False) -> Sequence[Any]:
    """The plan's record sets replace the zone's (delete, insert); with ``returning``, the rows
    written (id, name, type, ttl, content)."""
    stale = [i for key in plan.writes for i in (plan.current[key].ids if key in plan.current else [])]
    if len(stale) == 1:
        conn.execute(_DELETE_ID, {"record_id": stale[0]})
    elif stale:
        conn.execute(_DELETE_IDS, {"ids": stale})
    rows = [dict(zone_id=zone_id, name=k[0], type=k[1], ttl=v.ttl, content=c)
            for k, v in plan.writes.items() if v for c in v.records]
    if rows and returning:   # one row: a plain execute, not an executemany batch
        return conn.execute(_INSERT_RETURNING, rows[0] if len(rows) == 1 else rows).all()
    if rows:
        conn.execute(_INSERT, rows)
    return []


def _set_soa_serial(conn: Connection, zone_id: int, serial: int,
                    soa: Sequence[Any] | None = None) -> None:
    """The serial in the zone's SOA record(s) (``soa``: their (id, content) if already read)."""
    if soa is None:
        soa = conn.execute(_SOA, {"zone_id": zone_id}).all()
    for record_id, content in soa:
        parts = content.split()
        parts[2] = str(serial)
        conn.execute(_SET_CONTENT, {"record_id": record_id, "new_content": " ".join(parts)})


def _zone_changed(uow: UnitOfWork, zone: Row[Any], serial: int) -> None:
    uow.emit("zone_changed", {"zone": zone.name, "serial": serial, "customer_id": zone.customer_id,
                              "action": "changed"})


def _commit(uow: UnitOfWork, zone: Row[Any], plan: Plan, today: dt.date) -> int:
    """Write a valid plan; version and serial rise once; ``zone_changed`` goes out."""
    conn = uow.session.connection()
    _write(conn, zone.id, plan)
    serial = next_serial(zone.serial, today)
    _set_soa_serial(conn, zone.id, serial)
    conn.execute(_BUMP_ZONE, {"zone_id": zone.id, "new_serial": serial,
                              "new_version": zone.version + 1})
    _zone_changed(uow, zone, serial)
    return serial


def _warnings(plan: Plan) -> list[dict[str, Any]]:
    return [{"field": w.field, "message": w.message} for w in plan.warnings]


def apply_changes(uow: UnitOfWork, customer_id: int, name: str, headers: dict[str, Any],
                  changes: list[dict[str, Any]], policy: Policy,
                  today: dt.date | None = None) -> dict[str, Any]:
    """Apply a change set atomically (all or nothing) on the version named by If-Match.

    The zone's row is locked, checked and bumped by one ``UPDATE … WHERE version = If-Match``
    first (a rejected change set rolls the bump back with everything else); when it matches
    no row, the zone is missing (404) or at another version (409)."""
    expected = parse_if_match(headers)
    conn = uow.session.connection()
    zone = conn.execute(_BUMP_IF_CURRENT, {
        "zone_name": normalise_zone(name), "owner_id": customer_id, "expected": expected,
        "floor": initial_serial(today or utcnow().date())}).first()
    if zone is None:
        _check_version(_zone(uow.session, customer_id, name), expected)
        raise AssertionError("the zone's version matched but its update did not")  # pragma: no cover
    source = SqlSource(uow.session, zone.id, zone.name, with_soa=True)
    plan = changeset.plan(zone.name, changes, source, policy)
    if not plan.ok:
        raise _problems_error(plan.problems)
    written = _write(conn, zone.id, plan, returning=True)
    _set_soa_serial(conn, zone.id, zone.serial, source.soa)
    _zone_changed(uow, zone, zone.serial)
    # every row of a touched set was deleted and written again: the rows written are the sets
    changed = [dict(r, managed=_managed(r)) for r in sorted(
        ({"id": i, "name": n, "type": t, "ttl": ttl, "content": c} for i, n, t, ttl, c in written),
        key=zonefile._sort_key)]
    return {"name": zone.name, "name_unicode": display(zone.name), "serial": zone.serial,
            "version": zone.version, "etag": f'"{zone.version}"', "records": changed,
            "deleted": [{"name": k[0], "type": k[1]} for k, v in sorted(plan.writes.items()) if not v],
            "warnings": _warnings(plan)}


def export_zone(session: Session, customer_id: int, name: str) -> dict[str, Any]:
    zone = _zone(session, customer_id, name)
    text = zonefile.export_text(zone.name, zone.serial, _zone_rows(session, zone.id, sort=False),
                                utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    return {"filename": f"{zone.name}.zone", "content_type": "text/dns; charset=utf-8",
            "content_b64": base64.b64encode(text.encode("utf-8")).decode("ascii"),
            "version": zone.version}


def import_zone(uow: UnitOfWork, customer_id: int, name: str, headers: dict[str, Any], text: str,
                policy: Policy, *, replace_all: bool = False, dry_run: bool = False,
                today: dt.date | None = None) -> dict[str, Any]:
    """A zone file as one change set: each record set in the file replaces the zone's set.

    Records the rules reject are left out and reported (with line and reason);
    SOA and the zone's own NS set are ignored (the system manages them);
    ``replace_all`` also deletes the customer's record sets missing from the file.
    """
    expected = parse_if_match(headers)
    zone = _zone(uow.session, customer_id, name, lock=True)
    _check_version(zone, expected)
    parsed, rejected = zonefile.parse(text, zone.name)
    if len(parsed) > policy.max_import_records:
        raise ValidationFailed("Die Zonendatei ist zu groß.", fields={"zone_file": [
            f"Sie enthält {len(parsed)} Einträge; importiert werden höchstens "
            f"{policy.max_import_records} auf einmal."]})
    ignored, notes = [], []
    groups: dict[Any, dict[str, Any]] = {}
    for r in parsed:
        try:
            rel = rules.owner_name(r["owner"], zone.name)
        except RuleError as exc:
            rejected.append({"line": r["line"], "text": r["text"], "message": exc.message})
            continue
        if r["type"] == "SOA" or (r["type"] == "NS" and rel == "@"):
            ignored.append({"line": r["line"], "text": r["text"],
                            "message": f"{r['type']} der Zone wird vom System verwaltet und "
                                       f"wurde nicht übernommen."})
            continue
        ttl = r["ttl"] if r["ttl"] is not None else policy.ttl_default
        group = groups.setdefault((rel, r["type"]), {"ttl": ttl, "items": []})
        if ttl != group["ttl"]:
            notes.append({"field": f"line {r['line']}", "line": r["line"], "message": (
                f"Zeile {r['line']}: {display(r['owner'])} {r['type']} bekommt die TTL "
                f"{group['ttl']} der anderen Einträge (eine TTL je Name und Typ).")})
        if r["content"] not in [c for c, _ in group["items"]]:
            group["items"].append((r["content"], r))
    source = SqlSource(uow.session, zone.id, zone.name)
    deletions = []
    if replace_all:
        deletions = sorted(k for k in source.keys() if k not in groups
                           and not (k[1] == "SOA" or (k[1] == "NS" and k[0] == "@")))
    plan: Any = None  # a Plan, or None when nothing is left to change
    for _ in range(50):
        keys = [k for k in groups if groups[k]["items"]]
        changes = [{"action": "replace", "name": rules.fqdn(k[0], zone.name), "type": k[1],
                    "ttl": groups[k]["ttl"], "records": [c for c, _ in groups[k]["items"]]}
                   for k in keys]
        changes += [{"action": "delete", "name": rules.fqdn(k[0], zone.name), "type": k[1]}
                    for k in deletions]
        if not changes:
            plan = None
            break
        plan = changeset.plan(zone.name, changes, source, policy)
        if plan.ok:
            break
        # Drop only what fails on its own first (stage 1), then what clashes at a name (a
        # CNAME beside other data: the CNAME goes, the rest stays), then what points at
        # something broken — re-planned after each step, so a record is only rejected for
        # its own fault, with its own message.
        stage = min(p.stage for p in plan.problems)
        drop: dict[Any, Any] = {}
        for p in plan.problems:
            if p.stage == stage:
                drop.setdefault(p.change or 0, {}).setdefault(p.record, p.message)
        for index, by_record in sorted(drop.items(), reverse=True):
            if index >= len(keys):   # a deletion the rules refuse: keep that set
                deletions.pop(index - len(keys))
                continue
            group = groups[keys[index]]
            doomed = range(len(group["items"])) if None in by_record else sorted(by_record)
            for j in sorted(doomed, reverse=True):
                content, r = group["items"].pop(j)
                message = by_record.get(j) or by_record.get(None)
                rejected.append({"line": r["line"], "text": r["text"], "message": message})
    else:
        raise ValidationFailed("Die Zonendatei konnte nicht verarbeitet werden.",
                               fields={"zone_file": ["Zu viele voneinander abhängige Fehler."]})
    if plan and plan.ok:
        for w in plan.warnings:
            lines = groups[keys[w.change]]["items"] if w.change is not None \
                and w.change < len(keys) else []
            if w.record is not None and w.record < len(lines):
                lines = [lines[w.record]]
            for _, r in lines[:1] if w.record is None else lines:
                notes.append({"field": f"line {r['line']}", "line": r["line"],
                              "message": f"Zeile {r['line']}: {w.message}"})
    applied = bool(plan and plan.ok and not dry_run)
    if applied:
        _commit(uow, zone, plan, today or utcnow().date())
    fresh = _zone(uow.session, customer_id, name)
    accepted = sum(len(v.records) for v in plan.writes.values() if v) if plan and plan.ok else 0
    return {"applied": applied, "dry_run": dry_run, "accepted": accepted,
            "deleted_sets": len(deletions) if plan and plan.ok else 0,
            "rejected": sorted(rejected, key=lambda r: r["line"]),
            "ignored": ignored, "warnings": sorted(notes, key=lambda n: n.get("line") or 0),
            "version": fresh.version, "serial": fresh.serial, "etag": f'"{fresh.version}"'}

"""Change sets: add / replace / delete record sets, validated as a whole before anything is written.

:func:`plan` is pure: it reads the zone through a *source* (SQL in the service,
memory in the unit tests and the import) only where a rule needs it — the
names touched, their ancestors, the targets of new MX/NS/SRV records, what
lies below a new delegation and who points at a new CNAME — so a change on a
zone of 10,000 records reads a handful of rows, not the zone.
"""
from dataclasses import dataclass, field

from kc_dns import rules
from kc_dns.rules import Problem, RuleError, display, fqdn

ACTIONS = ("add", "replace", "delete")
ACTION_WORDS = {"add": "hinzufügen", "replace": "ersetzen", "delete": "löschen"}
ADDRESS_TYPES = {"A", "AAAA"}
TARGET_TYPES = {"MX", "NS", "SRV"}


@dataclass
class Rrset:
    ttl: int
    records: list
    ids: list = field(default_factory=list)


@dataclass
class Plan:
    """What a valid change set writes: ``writes[(name, type)]`` is the new set or None (deleted)."""
    current: dict
    writes: dict
    problems: list
    warnings: list

    @property
    def ok(self):
        return not self.problems


class MemorySource:
    """A zone held in memory: ``{(name, type): Rrset}`` (tests, import planning)."""

    def __init__(self, sets):
        self.sets = sets

    def rows_at(self, names):
        return {k: Rrset(v.ttl, list(v.records), list(v.ids)) for k, v in self.sets.items()
                if k[0] in names}

    def descendants(self, rel):
        suffix = "." + rel
        return [k for k in self.sets if rel != "@" and k[0].endswith(suffix)]

    def referrers(self, target):
        return [(k, c) for k, v in self.sets.items() if k[1] in TARGET_TYPES for c in v.records
                if target in rules.rdata_targets(k[1], c)]

    def keys(self):
        return list(self.sets)


def ancestors(rel):
    """Names strictly between ``rel`` and the apex: ``a.b.c`` -> ``b.c``, ``c``."""
    if rel == "@":
        return []
    labels = rel.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def _parse_change(i, change, zone, policy, problems, in_zone=None):
    """Per-change checks (name, type, TTL, contents); None when it has a problem."""
    path = f"changes.{i}"
    before = len(problems)
    action = change.get("action")
    rtype = (change.get("type") or "").strip().upper()
    raw_name = change.get("name") or "@"
    if action not in ACTIONS:
        problems.append(Problem(f"{path}.action", f"Unbekannte Aktion „{action}“; erlaubt: "
                                                  f"add, replace, delete."))
    if rtype not in rules.TYPES:
        what = "Der SOA-Eintrag wird vom System verwaltet." if rtype == "SOA" else \
            f"Der Typ „{change.get('type')}“ wird nicht unterstützt; möglich: {', '.join(rules.TYPES)}."
        problems.append(Problem(f"{path}.type", what))
    try:
        rel = rules.owner_name(raw_name, zone)
    except RuleError as exc:
        problems.append(Problem(f"{path}.name", exc.message))
        return None
    where = f"{display(fqdn(rel, zone))} {rtype}"
    if rtype in rules.TYPES:
        try:
            rules.check_owner_for_type(rel, rtype, zone)
        except RuleError as exc:
            problems.append(Problem(f"{path}.name", exc.message))
    ttl = change.get("ttl")
    if ttl is not None:
        try:
            rules.check_ttl(ttl, policy)
        except RuleError as exc:
            problems.append(Problem(f"{path}.ttl", f"{where}: {exc.message}"))
    raw_records = change.get("records")
    if raw_records is None:
        raw_records = []
    if action in ("add", "replace") and not raw_records:
        hint = " Zum Entfernen bitte „delete“ verwenden." if action == "replace" else ""
        problems.append(Problem(f"{path}.records", f"{where}: Bitte mindestens einen Eintrag "
                                                   f"angeben.{hint}"))
    if len(raw_records) > policy.max_records_per_set:
        problems.append(Problem(f"{path}.records", f"{where}: höchstens "
                                                   f"{policy.max_records_per_set} Einträge je Satz."))
    contents = []
    if rtype in rules.TYPES:
        for j, raw in enumerate(raw_records):
            rpath = f"{path}.records.{j}"
            try:
                content = rules.canonical_content(rtype, raw if isinstance(raw, str) else "", zone,
                                                  policy, in_zone=in_zone)
            except RuleError as exc:
                problems.append(Problem(rpath + (f".{exc.sub}" if exc.sub else ""),
                                        f"{where} „{raw}“: {exc.message}"))
                continue
            if content in contents:
                problems.append(Problem(rpath, f"{where} „{raw}“: Dieser Eintrag ist doppelt "
                                               f"angegeben."))
                continue
            contents.append(content)
    if len(problems) > before:
        return None
    return (i, action, rel, rtype, ttl, contents)


def plan(zone, changes, source, policy, *, default_ttl=None):
    """Validate ``changes`` against the zone; returns a :class:`Plan` (``problems`` empty = valid)."""
    problems, warnings = [], []
    owners = set()
    for ch in changes:
        try:
            owners.add(rules.owner_name(ch.get("name") or "@", zone))
        except RuleError:
            pass
    known = {}

    def in_zone(rel):
        """Whether the zone has (or this change set writes) the relative name ``rel``."""
        if rel in owners:
            return True
        if rel not in known:
            known[rel] = bool(source.rows_at({rel}))
        return known[rel]

    parsed = [p for i, ch in enumerate(changes)
              if (p := _parse_change(i, ch, zone, policy, problems, in_zone)) is not None]
    if problems:
        return Plan({}, {}, problems, warnings)
    default_ttl = default_ttl or policy.ttl_default

    touched_names = {p[2] for p in parsed}
    targets = {rules.relative(t, zone) for p in parsed if p[3] in TARGET_TYPES for c in p[5]
               for t in rules.rdata_targets(p[3], c)} - {None}
    to_load = touched_names | targets | {a for n in touched_names | targets for a in ancestors(n)}
    current = source.rows_at(to_load)

    state, touched = {}, {}
    for i, action, rel, rtype, ttl, contents in parsed:
        key = (rel, rtype)
        path = f"changes.{i}"
        where = f"{display(fqdn(rel, zone))} {rtype}"
        cur = state[key] if key in state else current.get(key)
        new = None
        if action == "replace":
            new = Rrset(ttl or (cur.ttl if cur else default_ttl), list(contents))
        elif action == "add":
            if cur:
                if ttl is not None and ttl != cur.ttl:
                    problems.append(Problem(f"{path}.ttl", (
                        f"{where}: Die vorhandenen Einträge haben die TTL {cur.ttl}; alle Einträge "
                        f"eines Namens und Typs haben dieselbe TTL. Ändern Sie die TTL mit "
                        f"„replace“.")))
                for j, content in enumerate(contents):
                    if content in cur.records:
                        problems.append(Problem(f"{path}.records.{j}",
                                                f"{where} „{content}“: Diesen Eintrag gibt es schon."))
                new = Rrset(cur.ttl, cur.records + [c for c in contents if c not in cur.records])
            else:
                new = Rrset(ttl or default_ttl, list(contents))
        else:  # delete
            if not cur:
                problems.append(Problem(f"{path}.name", f"{where}: Es gibt keine solchen Einträge, "
                                                        f"die gelöscht werden könnten."))
            elif contents:
                for j, content in enumerate(contents):
                    if content not in cur.records:
                        problems.append(Problem(f"{path}.records.{j}",
                                                f"{where} „{content}“: Diesen Eintrag gibt es nicht."))
                rest = [c for c in cur.records if c not in contents]
                new = Rrset(cur.ttl, rest) if rest else None
        if new is not None and len(new.records) > policy.max_records_per_set:
            problems.append(Problem(f"{path}.records", f"{where}: höchstens "
                                                       f"{policy.max_records_per_set} Einträge je Satz."))
        state[key] = new
        touched[key] = i
    if problems:
        return Plan(current, {}, problems, warnings)

    by_name = {}
    for source_sets in (current, state):     # the state after the change set, by name
        for (n, t), v in source_sets.items():
            by_name.setdefault(n, {})[t] = v

    def sets_at(name):
        return {t: v for t, v in by_name.get(name, {}).items() if v}

    def change_at(name, prefer=()):
        for t in prefer:
            if (name, t) in touched:
                return touched[(name, t)]
        return min(i for k, i in touched.items() if k[0] == name)

    def err(i, message, suffix="name"):
        problems.append(Problem(f"changes.{i}.{suffix}", message))

    below_cache = {}

    def below(name):
        """Existing (name, type) pairs below ``name`` after the change set."""
        if name not in below_cache:
            found = {k for k in source.descendants(name)}
            suffix = "." + name
            found |= {k for k, v in state.items() if k[0].endswith(suffix) and v}
            found -= {k for k, v in state.items() if v is None}
            below_cache[name] = found
        return below_cache[name]

    for name in sorted(touched_names):
        sets = sets_at(name)
        where = display(fqdn(name, zone))
        types = set(sets)
        for exclusive in ("CNAME", "DNAME"):
            if exclusive in types and len(sets[exclusive].records) > 1:
                err(change_at(name, (exclusive,)), f"{where}: Für einen Namen ist nur ein "
                                                   f"{exclusive}-Eintrag möglich.", "records")
        if "CNAME" in types and len(types) > 1:
            others = ", ".join(sorted(types - {"CNAME"}))
            err(change_at(name, ("CNAME",)),
                f"{where}: Ein CNAME-Eintrag muss allein stehen, dort gibt es aber auch {others}. "
                f"Löschen Sie die anderen Einträge oder wählen Sie einen anderen Namen.")
        if "MX" in types and "0 ." in sets["MX"].records and len(sets["MX"].records) > 1:
            err(change_at(name, ("MX",)), f"{where}: Ein „kein Mailempfang“-Eintrag (0 .) muss der "
                                          f"einzige MX-Eintrag sein.", "records")
        if name != "@" and "NS" in types and len(types) > 1:
            others = ", ".join(sorted(types - {"NS"}))
            err(change_at(name, ("NS",)),
                f"{where}: Diese Subdomain ist per NS an andere Nameserver delegiert; daneben sind "
                f"keine weiteren Einträge ({others}) möglich.")
        for parent in ancestors(name):
            psets = sets_at(parent)
            if "NS" in psets and not types <= ADDRESS_TYPES:
                err(change_at(name), (
                    f"{where} liegt unterhalb der delegierten Subdomain {display(fqdn(parent, zone))}; "
                    f"dort sind nur A/AAAA-Einträge für deren Nameserver möglich."))
                break
            if "DNAME" in psets and types:
                err(change_at(name), (
                    f"{where} liegt unterhalb des DNAME-Eintrags von {display(fqdn(parent, zone))} "
                    f"und wäre nicht erreichbar."))
                break
        if name != "@" and types & {"NS", "DNAME"}:
            kind = "NS" if "NS" in types else "DNAME"
            bad = sorted(f"{display(fqdn(n, zone))} {t}" for n, t in below(name)
                         if kind == "DNAME" or t not in ADDRESS_TYPES)
            if bad:
                err(change_at(name, (kind,)), (
                    f"{where}: Unter diesem Namen gibt es Einträge ({', '.join(bad[:5])}), die mit "
                    f"einem {kind}-Eintrag nicht mehr erreichbar wären."))
        if "CNAME" in types:
            target = fqdn(name, zone)
            users = {k for k, _ in source.referrers(target) if k not in state}
            if users:
                first = sorted(users)[0]
                err(change_at(name, ("CNAME",)), (
                    f"{where} wird von {display(fqdn(first[0], zone))} {first[1]} als Ziel "
                    f"verwendet; Ziele von MX-, NS- und SRV-Einträgen dürfen keine CNAMEs sein."))

    for key, new in state.items():
        if not new or key[1] not in TARGET_TYPES:
            continue
        i = touched[key]
        where = f"{display(fqdn(key[0], zone))} {key[1]}"
        for j, content in enumerate(new.records):
            for target in rules.rdata_targets(key[1], content):
                rel = rules.relative(target, zone)
                if rel is None:
                    continue
                tsets = sets_at(rel)
                field = f"changes.{i}.records"
                if "CNAME" in tsets:
                    problems.append(Problem(field, (
                        f"{where} „{content}“: Das Ziel {display(target)} ist ein CNAME-Eintrag. "
                        f"Tragen Sie den Namen ein, auf den der CNAME zeigt.")))
                elif not tsets.keys() & ADDRESS_TYPES:
                    warnings.append(Problem(field, (
                        f"{where} „{content}“: Für das Ziel {display(target)} gibt es in dieser Zone "
                        f"(noch) keinen A- oder AAAA-Eintrag."), warning=True))
    if problems:
        return Plan(current, {}, problems, warnings)
    return Plan(current, state, problems, warnings)

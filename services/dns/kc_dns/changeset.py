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

    def target_records(self):
        return [(k, c) for k, v in self.sets.items() if k[1] in TARGET_TYPES for c in v.records]

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
        """Whether the zone has (or this change set writes) ``rel`` or a name above it
        (``ns1.neu`` for a delegation ``neu`` made in the same change set)."""
        for name in [rel, *ancestors(rel)]:
            if name in owners:
                return True
            if name not in known:
                known[name] = bool(source.rows_at({name}))
            if known[name]:
                return True
        return False

    parsed = [p for i, ch in enumerate(changes)
              if (p := _parse_change(i, ch, zone, policy, problems, in_zone)) is not None]
    if problems:
        return Plan({}, {}, problems, warnings)
    default_ttl = default_ttl or policy.ttl_default

    touched_names = {p[2] for p in parsed}
    targets = {rules.relative(t, zone) for p in parsed if p[3] in TARGET_TYPES for c in p[5]
               for t in rules.rdata_targets(p[3], c)} - {None}
    to_load = touched_names | targets | {a for n in touched_names | targets for a in ancestors(n)}
    to_load |= {"*" if a == "@" else f"*.{a}" for t in targets for a in ancestors(t) + ["@"]}
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

    view = _View(zone, source, current, state)
    touched_by_name = {}
    for key, i in touched.items():
        touched_by_name.setdefault(key[0], {})[key[1]] = i

    def change_at(name, prefer=()):
        for t in prefer:
            if t in touched_by_name[name]:
                return touched_by_name[name][t]
        return min(touched_by_name[name].values())

    def err(i, message, suffix="name", stage=2):
        problems.append(Problem(f"changes.{i}.{suffix}", message, stage=stage))

    for name in sorted(touched_names):
        sets = view.sets_at(name)
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
        self_glue = name != "@" and "NS" in types and fqdn(name, zone) in sets["NS"].records
        if name != "@" and "NS" in types and types - {"NS"} - (ADDRESS_TYPES if self_glue else set()):
            others = ", ".join(sorted(types - {"NS"} - (ADDRESS_TYPES if self_glue else set())))
            err(change_at(name, ("NS",)),
                f"{where}: Diese Subdomain ist per NS an andere Nameserver delegiert; daneben sind "
                f"keine weiteren Einträge ({others}) möglich (A/AAAA nur als Glue, wenn der "
                f"Nameserver selbst so heißt).")
        for parent in ancestors(name):
            psets = view.sets_at(parent)
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
            bad = sorted(f"{display(fqdn(n, zone))} {t}" for n, t in view.below(name)
                         if kind == "DNAME" or t not in ADDRESS_TYPES)
            if bad:
                err(change_at(name, (kind,)), (
                    f"{where}: Unter diesem Namen gibt es Einträge ({', '.join(bad[:5])}), die mit "
                    f"einem {kind}-Eintrag nicht mehr erreichbar wären."), stage=3)
        if "SRV" in types and ("SRV" in touched_by_name[name]):
            note = rules.srv_owner_warning(name, zone)
            if note:
                warnings.append(Problem(f"changes.{touched_by_name[name]['SRV']}.name", note,
                                        warning=True))

    # Where the targets of MX/SRV/NS lead once the change set is applied (named-checkzone
    # -i full -m fail -M fail -S fail): first the records this change set writes ...
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
                fault = view.target_fault(rel, key[1], key[0])
                if fault:
                    problems.append(Problem(f"changes.{i}.records.{j}",
                                            f"{where} „{content}“: {fault}", stage=4))
    # ... then the records elsewhere in the zone that point at a name this change set makes
    # worse (an address removed, a CNAME/DNAME/NS added, a name that shadows a wildcard).
    blame = {}      # target name (exact) or ("below", name) -> the touched name to blame
    names_before = {k[0] for k, v in current.items() if v}
    for name in touched_names:
        kinds = touched_by_name[name]
        sets = view.sets_at(name)
        existed = name in names_before
        if any(t in ADDRESS_TYPES and state.get((name, t)) is None for t in kinds) \
                or "CNAME" in sets or (not existed and sets and not sets.keys() & ADDRESS_TYPES):
            blame[name] = name
        if kinds.keys() & {"NS", "DNAME"} or (not existed and sets):
            blame[("below", name)] = name     # a new name is a new closest encloser below it
        if name.startswith("*"):
            blame[("below", "@" if name == "*" else name[2:])] = name
    if blame:
        bases = [k[1] for k in blame if isinstance(k, tuple)]
        seen = set()
        for (owner, rtype), content in source.target_records():
            if (owner, rtype) in state or (owner, rtype, content) in seen:
                continue
            seen.add((owner, rtype, content))
            for target in rules.rdata_targets(rtype, content):
                rel = rules.relative(target, zone)
                if rel is None:
                    continue
                cause = blame.get(rel) or next((blame[("below", b)] for b in bases
                                                if rel != b and (b == "@" or rel.endswith("." + b))),
                                               None)
                if cause is None:
                    continue
                fault = view.target_fault(rel, rtype, owner)
                if fault:
                    err(change_at(cause, ("CNAME", "DNAME", "NS", "A", "AAAA")), (
                        f"{display(target)} ist das Ziel von {display(fqdn(owner, zone))} {rtype} "
                        f"„{content}“; nach dieser Änderung: {fault}"), stage=4)
    if problems:
        return Plan(current, {}, problems, warnings)
    return Plan(current, state, problems, warnings)


class _View:
    """The zone as it would be after the change set (the source overlaid with ``state``)."""

    def __init__(self, zone, source, current, state):
        self.zone, self.source, self.state = zone, source, state
        self.loaded = {}                  # name -> {type: Rrset} as stored
        self.names_loaded = set()
        self._add(current)
        self.names_loaded |= {n for n, _ in current}
        self.state_by_name = {}
        for (n, t), v in state.items():
            self.state_by_name.setdefault(n, {})[t] = v
        self.below_cache = {}

    def _add(self, sets):
        for (n, t), v in sets.items():
            self.loaded.setdefault(n, {})[t] = v

    def _load(self, names):
        missing = set(names) - self.names_loaded
        if missing:
            self._add(self.source.rows_at(missing))
            self.names_loaded |= missing

    def sets_at(self, name):
        self._load({name})
        found = {t: v for t, v in self.loaded.get(name, {}).items() if v}
        for t, v in self.state_by_name.get(name, {}).items():
            if v:
                found[t] = v
            else:
                found.pop(t, None)
        return found

    def below(self, name):
        """(name, type) pairs strictly below ``name`` after the change set."""
        if name not in self.below_cache:
            if name == "@":
                found = set(self.source.keys())
            else:
                found = set(self.source.descendants(name))
            found |= {k for k, v in self.state.items() if v and
                      (name == "@" and k[0] != "@" or k[0].endswith("." + name))}
            found -= {k for k, v in self.state.items() if v is None}
            self.below_cache[name] = found
        return self.below_cache[name]

    def show(self, rel):
        return display(fqdn(rel, self.zone))

    def exists(self, name):
        return name == "@" or bool(self.sets_at(name)) or bool(self.below(name))

    def target_fault(self, rel, rtype, owner):
        """Why the in-zone target ``rel`` of an ``rtype`` record at ``owner`` is broken, or None.

        Like BIND's integrity checks: MX/SRV targets must end at an A/AAAA (not a CNAME, also
        not through a wildcard CNAME, not below a DNAME); at or below a delegation the child
        zone answers. NS targets inside the zone need addresses here, below a delegation as
        glue (BIND: "has no REQUIRED GLUE address records").
        """
        self._load({rel, *ancestors(rel)})
        delegated = None
        for anc in reversed(ancestors(rel)):
            asets = self.sets_at(anc)
            if "DNAME" in asets:
                return (f"Das Ziel liegt unterhalb des DNAME-Eintrags von {self.show(anc)} und ist damit "
                        f"nicht erreichbar.")
            if "NS" in asets:
                delegated = anc
                break
        sets = self.sets_at(rel)
        if rtype != "NS":
            if delegated or (rel != "@" and "NS" in sets):
                return None          # the delegated zone answers for it
        if "CNAME" in sets:
            return ("Das Ziel ist ein CNAME-Eintrag; MX-, SRV- und NS-Einträge müssen auf einen "
                    "Namen mit A-/AAAA-Eintrag zeigen. Tragen Sie den Namen ein, auf den der CNAME "
                    "zeigt.")
        if sets.keys() & ADDRESS_TYPES:
            return None
        if delegated and rtype == "NS":
            return (f"Für das Ziel in der delegierten Subdomain {self.show(delegated)} fehlt die "
                    f"Glue-Adresse (A- oder AAAA-Eintrag); ohne sie ist die Delegation nicht "
                    f"erreichbar.")
        if not sets and not self.below(rel):
            closest = next((a for a in ancestors(rel) if self.exists(a)), "@")
            wildcard = "*" if closest == "@" else f"*.{closest}"
            wsets = self.sets_at(wildcard)
            if "CNAME" in wsets:
                return (f"Das Ziel gibt es nur über den Platzhalter-CNAME {self.show(wildcard)}; MX-, SRV- und "
                        f"NS-Einträge dürfen nicht auf CNAMEs zeigen.")
            if wsets.keys() & ADDRESS_TYPES and rtype != "NS":
                return None
        return ("Für das Ziel gibt es in dieser Zone keinen A- oder AAAA-Eintrag. Legen Sie ihn an "
                "(auch in derselben Änderung möglich) oder tragen Sie einen anderen Namen ein.")

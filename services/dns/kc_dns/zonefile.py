"""RFC 1035 master files: export a zone, read one for import (tolerant, line by line).

The export writes ``$ORIGIN``/``$TTL``, the SOA first, then every record as
``owner TTL IN TYPE rdata`` with owners relative to the origin and rdata in
the canonical form the rules stored (absolute names, TXT as quoted strings of
at most 255 octets). The reader splits the file into logical entries itself
(parentheses, quotes, comments, omitted owner/TTL/class) so that one broken
line is reported and the rest is still read; the rdata of each entry is
parsed by dnspython against the current ``$ORIGIN``.
"""
import re

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from kc_dns import rules
from kc_dns.rules import display

_TYPE_ORDER = {"SOA": 0, "NS": 1}


def _sort_key(record):
    name = record["name"]
    apex = name == "@"
    rtype = record["type"]
    return (not apex, name.split(".")[::-1] if not apex else [],
            _TYPE_ORDER.get(rtype, 2) if apex else 2, rtype, record["content"])


def export_text(zone, serial, records, generated_at):
    default_ttl = min((r["ttl"] for r in records), default=3600)
    lines = [f"; Zone {display(zone)} ({zone}), Serial {serial}",
             f"; exportiert {generated_at}",
             f"$ORIGIN {zone}.", f"$TTL {default_ttl}"]
    for r in sorted(records, key=_sort_key):
        lines.append(f"{r['name']}\t{r['ttl']}\tIN\t{r['type']}\t{r['content']}")
    return "\n".join(lines) + "\n"


def logical_entries(text):
    """``(line number, text, owner omitted)`` for each entry; comments dropped, parentheses joined."""
    entries = []
    buf, depth, start, line, in_quote = [], 0, 1, 1, False
    i, n = 0, len(text)
    at_line_start = True
    leading_ws = False
    while i < n:
        ch = text[i]
        if at_line_start and depth == 0 and not buf:
            start = line
            leading_ws = ch in " \t"
        at_line_start = False
        if in_quote:
            if ch == "\\" and i + 1 < n:
                buf.append(text[i:i + 2])
                i += 2
                continue
            if ch == '"':
                in_quote = False
            if ch == "\n":
                line += 1
            buf.append(ch)
        elif ch == "\\" and i + 1 < n:
            buf.append(text[i:i + 2])
            i += 2
            continue
        elif ch == '"':
            in_quote = True
            buf.append(ch)
        elif ch == ";":
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif ch == "(":
            depth += 1
            buf.append(" ")
        elif ch == ")":
            depth = max(depth - 1, 0)
            buf.append(" ")
        elif ch == "\n":
            line += 1
            if depth == 0:
                entries.append((start, "".join(buf), leading_ws))
                buf = []
                at_line_start = True
            else:
                buf.append(" ")
        else:
            buf.append(ch)
        i += 1
    if buf:
        entries.append((start, "".join(buf), leading_ws))
    return [(ln, t.strip(), ws) for ln, t, ws in entries if t.strip()]


_TOKEN = re.compile(r"\s*(\S+)")
_NO_LIMIT = rules.Policy(max_txt_bytes=1 << 30)   # the change set applies the real limit


def _long_txt(rtype, rdata):
    """TXT strings over 255 octets (PowerDNS writes them; dnspython refuses them) split the way the
    API splits them, or None."""
    if rtype != "TXT" or not rdata.startswith('"'):
        return None
    try:
        return rules.canonical_content("TXT", rdata, "", _NO_LIMIT)
    except rules.RuleError:
        return None


def parse(text, zone):
    """Read a master file. Returns ``(records, rejected)``.

    ``records``: ``{"line", "owner" (absolute), "type", "ttl" (or None), "content"}`` with
    dnspython's canonical rdata; ``rejected``: ``{"line", "text", "message"}``.
    """
    origin = dns.name.from_text(zone + ".")
    default_ttl, last_owner = None, None
    records, rejected = [], []
    for line, entry, owner_omitted in logical_entries(text):
        def reject(message, line=line, entry=entry):  # bound: called only in this iteration
            rejected.append({"line": line, "text": entry[:200], "message": message})

        if entry.startswith("$"):
            parts = entry.split()
            directive = parts[0].upper()
            try:
                if directive == "$ORIGIN" and len(parts) == 2:
                    origin = dns.name.from_text(parts[1], origin)
                elif directive == "$TTL" and len(parts) == 2:
                    default_ttl = dns.ttl.from_text(parts[1])
                else:
                    reject(f"Die Anweisung {parts[0]} wird nicht unterstützt.")
            except dns.exception.DNSException as exc:
                reject(f"Die Anweisung ist ungültig ({exc}).")
            continue
        pos = 0

        def next_token(entry=entry):
            nonlocal pos
            m = _TOKEN.match(entry, pos)
            if not m:
                return None
            pos = m.end()
            return m.group(1)

        try:
            if owner_omitted:
                if last_owner is None:
                    reject("Der Eintrag hat keinen Namen.")
                    continue
                owner = last_owner
            else:
                owner = dns.name.from_text(next_token(), origin)
                last_owner = owner
            ttl, token = None, next_token()
            for _ in range(2):
                if token is None:
                    break
                if token.upper() == "IN":
                    token = next_token()
                elif token[0].isdigit():
                    ttl = dns.ttl.from_text(token)
                    token = next_token()
                elif token.upper() in ("CH", "HS", "CS", "ANY"):
                    raise ValueError(f"Nur die Klasse IN wird unterstützt, nicht {token}.")
            if token is None:
                reject("Der Eintrag hat keinen Typ.")
                continue
            rtype = token.upper()
            rdata = entry[pos:].strip()
        except ValueError as exc:
            reject(str(exc))
            continue
        except dns.exception.DNSException as exc:
            reject(f"Der Eintrag ist ungültig ({exc}).")
            continue
        if rtype not in rules.TYPES and rtype != "SOA":
            reject(f"Der Typ {rtype} wird nicht unterstützt.")
            continue
        try:
            content = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), rdata,
                                          origin=origin, relativize=False).to_text()
        except dns.exception.DNSException as exc:
            content = _long_txt(rtype, rdata)
            if content is None:
                reject(f"{owner.to_text()} {rtype}: Der Inhalt ist ungültig ({exc}).")
                continue
        records.append({"line": line, "owner": owner.to_text(),
                        "type": rtype, "ttl": ttl if ttl is not None else default_ttl,
                        "content": content, "text": entry[:200]})
    return records, rejected

"""Record validation: dnspython parses the rdata, our rules sit on top. Pure (no database).

Every problem is a :class:`Problem` naming the field (a dotted path into the
change set, e.g. ``changes.2.records.0.port``) and the record in its message,
in German, for the customer. ``Problem.warning`` marks advice that does not
stop a change.

Names. A zone name is stored as its A-label without the trailing dot; record
names are stored relative to the zone (``@`` = the zone itself), lower case,
IDN labels converted to A-labels. An owner name typed as ``www.example.de``
(without the dot) that ends in the zone's name is taken as absolute.
Targets (CNAME, DNAME, MX, NS, SRV) are absolute when they end in a dot; a
single label (``mail``) or ``@`` is a name inside the zone; a dotted name
without the final dot is inside the zone when the zone has (or the change set
creates) that name (``ns1.intern``), else absolute (``mail.provider.net``). Contents are stored in canonical presentation
format with absolute names (``10 mail.example.de.``).
"""
import ipaddress
import re
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tokenizer
import idna

from kc_common.domains import lookalike_problem

TYPES = ("A", "AAAA", "CAA", "CNAME", "DNAME", "MX", "NS", "SRV", "TXT")
HOST_OWNER_TYPES = {"A", "AAAA", "MX"}        # owner must be a host name (BIND check-names)
CAA_TAGS = ("issue", "issuewild", "iodef", "issuemail", "contactemail", "contactphone")
SRV_PROTOCOLS = ("_tcp", "_udp", "_tls", "_sctp")
ROOT = dns.name.root
_LABEL = re.compile(r"^[a-z0-9_-]+$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_FIELD = re.compile(r"^changes\.(\d+)(?:\.records\.(\d+))?")


@dataclass(frozen=True)
class Policy:
    ttl_min: int = 60
    ttl_max: int = 86400
    ttl_default: int = 3600
    max_records_per_set: int = 100
    max_txt_bytes: int = 4000
    max_import_records: int = 5000   # keeps an import well inside the gateway's RPC timeout

    @classmethod
    def from_config(cls, config):
        cfg = (config or {}).get("DNS_POLICY") or {}
        return cls(**{k: int(v) for k, v in cfg.items() if k in cls.__dataclass_fields__})


@dataclass
class Problem:
    """One problem; ``change``/``record`` say which change (and which of its records) caused
    it (the import maps them to lines); ``stage``: 1 one record or set on its own, 2 what
    stands at a name (a CNAME beside data, data below a delegation), 3 a new delegation or
    DNAME over existing names, 4 where a target leads. The import drops the lowest stage first."""
    field: str
    message: str
    warning: bool = False
    change: int = None
    record: int = None
    stage: int = 1

    def __post_init__(self):
        m = _FIELD.match(self.field)
        if m and self.change is None:
            self.change = int(m.group(1))
            self.record = int(m.group(2)) if m.group(2) is not None else None


class RuleError(Exception):
    """One problem with one value; ``sub`` names the part of the record (e.g. ``port``)."""

    def __init__(self, message, sub=None):
        super().__init__(message)
        self.message = message
        self.sub = sub


# ---------------------------------------------------------------- names

def display(fqdn):
    """An absolute name (A-labels) as the customer reads it: U-labels, no trailing dot."""
    labels = []
    for label in fqdn.rstrip(".").split("."):
        if label.startswith("xn--"):
            try:
                label = idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                pass
        labels.append(label)
    return ".".join(labels)


def zone_name(text):
    """A zone's A-label name without the trailing dot (raises RuleError)."""
    labels = _labels(text.strip().rstrip("."), host=True, what="Der Zonenname")
    if len(labels) < 2:
        raise RuleError(f"„{text}“ ist kein vollständiger Domainname.")
    return ".".join(labels)


def _label(label, *, host, what, position, total):
    original = label
    if not label:
        raise RuleError(f"{what} enthält einen leeren Namensteil (zwei Punkte hintereinander "
                        f"oder ein Punkt am Anfang).")
    if label == "*":
        if position != 0:
            raise RuleError(f"{what}: „*“ ist nur als erster Namensteil erlaubt (z. B. *.shop).")
        return label
    if not label.isascii():
        try:
            label = idna.encode(label, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise RuleError(f"{what}: „{original}“ ist kein gültiger internationaler Name (IDN).") from None
    if label.lower().startswith("xn--"):  # look-alikes (pаypal with a Cyrillic а): kc_common.domains
        problem = lookalike_problem(label)
        if problem:
            raise RuleError(f"{what}: {problem}")
    label = label.lower()
    if len(label.encode()) > 63:
        raise RuleError(f"{what}: der Namensteil „{original}“ ist länger als 63 Zeichen"
                        f"{' (als Punycode)' if label != original.lower() else ''}.")
    if not _LABEL.match(label):
        raise RuleError(f"{what}: „{original}“ enthält unzulässige Zeichen. Erlaubt sind "
                        f"Buchstaben, Ziffern, Bindestrich und Unterstrich.")
    if host and not _HOST_LABEL.match(label):
        if "_" in label:
            raise RuleError(f"{what}: „{original}“ ist kein gültiger Hostname (kein Unterstrich "
                            f"erlaubt).")
        raise RuleError(f"{what}: „{original}“ darf nicht mit einem Bindestrich beginnen oder enden.")
    if label.startswith("-") or label.endswith("-"):
        raise RuleError(f"{what}: „{original}“ darf nicht mit einem Bindestrich beginnen oder enden.")
    return label


def _labels(text, *, host, what):
    parts = text.split(".")
    return [_label(p, host=host, what=what, position=i, total=len(parts)) for i, p in enumerate(parts)]


def _check_length(fqdn, what):
    if len(fqdn.rstrip(".")) > 253:
        raise RuleError(f"{what} ist mit der Zone zusammen länger als 253 Zeichen.")


def owner_name(text, zone):
    """An owner name relative to ``zone`` (``@`` for the apex). Raises RuleError."""
    text = (text or "").strip()
    what = f"Der Name „{text}“" if "." in text.rstrip(".") else "Der Name"
    if text in ("", "@"):
        return "@"
    absolute = text.endswith(".")
    text = text.rstrip(".") if absolute else text
    if text in ("", "@"):
        return "@"
    labels = _labels(text, host=False, what=what)
    zone_labels = zone.split(".")
    n = len(zone_labels)
    if labels[-n:] == zone_labels:
        labels = labels[:-n]
    elif absolute:
        raise RuleError(f"„{text}.“ liegt nicht in der Zone {display(zone)}.")
    if not labels:
        return "@"
    rel = ".".join(labels)
    _check_length(f"{rel}.{zone}", what)
    return rel


def fqdn(rel, zone):
    return f"{zone}." if rel == "@" else f"{rel}.{zone}."


def relative(fqdn_, zone):
    """Relative name of an absolute name inside the zone, or None."""
    name = fqdn_.rstrip(".").lower()
    if name == zone:
        return "@"
    if name.endswith("." + zone):
        return name[: -len(zone) - 1]
    return None


def _is_address(text):
    try:
        ipaddress.ip_address(text.rstrip("."))
        return True
    except ValueError:
        return False


def target_name(text, zone, *, host, what, allow_root=False, in_zone=None):
    """An absolute target (``mail.example.de.``). Raises RuleError.

    ``in_zone(rel)`` says whether the zone has (or gets) the name ``rel``: a
    dotted target without the final dot (``ns1.intern``) that names one is in
    the zone; otherwise it is taken as absolute (``mail.provider.net``).
    """
    text = (text or "").strip()
    if text == "." and allow_root:
        return "."
    if text == ".":
        raise RuleError(f"{what} „.“ (die DNS-Wurzel) ist hier nicht möglich; tragen Sie einen "
                        f"Hostnamen ein.")
    if not text:
        raise RuleError(f"{what} fehlt.")
    if _is_address(text):
        raise RuleError(f"{what} muss ein Hostname sein, keine IP-Adresse. Legen Sie für die "
                        f"Adresse einen A- bzw. AAAA-Eintrag an und tragen Sie dessen Namen ein.")
    if text == "@":
        return f"{zone}."
    absolute = text.endswith(".") or "." in text
    labels = _labels(text.rstrip("."), host=host, what=what)
    if absolute and not text.endswith(".") and in_zone is not None and in_zone(".".join(labels)):
        absolute = False
    name = ".".join(labels) + "." if absolute else f"{'.'.join(labels)}.{zone}."
    if "*" in labels:
        raise RuleError(f"{what} darf keinen Platzhalter „*“ enthalten.")
    _check_length(name, what)
    return name


# ---------------------------------------------------------------- rdata

def _int(value, what, sub, lo=0, hi=65535):
    try:
        number = int(value, 10)
    except (TypeError, ValueError):
        raise RuleError(f"{what} muss eine ganze Zahl sein (nicht „{value}“).", sub) from None
    if not lo <= number <= hi:
        raise RuleError(f"{what} {number} liegt außerhalb von {lo} bis {hi}.", sub)
    return number


def _tokens(content, count, names):
    parts = content.split()
    if len(parts) != count:
        raise RuleError(f"Erwartet werden {count} Angaben: {' '.join(names)} "
                        f"(gefunden: {len(parts)}).")
    return parts


def _txt_chunks(data):
    """Split bytes into strings of at most 255 octets, never inside a UTF-8 character."""
    chunks, start = [], 0
    while start < len(data):
        end = min(start + 255, len(data))
        while end < len(data) and end > start and (data[end] & 0xC0) == 0x80:
            end -= 1
        chunks.append(data[start:end])
        start = end
    return chunks


def _txt(content, policy):
    text = content.strip()
    if not text:
        raise RuleError("Der Text fehlt.")
    if text.startswith('"'):
        # presentation format: one or more quoted strings, escapes like \" and \\.
        tok = dns.tokenizer.Tokenizer(text)
        data = []
        try:
            while True:
                token = tok.get()
                if token.is_eol_or_eof():
                    break
                if not token.is_quoted_string():
                    raise RuleError("Nach einem Text in Anführungszeichen darf nur ein weiterer "
                                    "Text in Anführungszeichen folgen.")
                data.append(token.unescape_to_bytes().value)
        except dns.exception.DNSException:
            raise RuleError("Die Anführungszeichen sind nicht geschlossen oder ein \\-Zeichen "
                            "ist ungültig.") from None
        strings = [c for s in data for c in (_txt_chunks(s) or [b""])]
    else:
        # plain text: taken literally as one value (spaces kept), split into 255-octet strings.
        strings = _txt_chunks(text.encode("utf-8"))
    total = sum(len(s) for s in strings)
    if total > policy.max_txt_bytes:
        raise RuleError(f"Der Text ist {total} Bytes lang; erlaubt sind höchstens "
                        f"{policy.max_txt_bytes}.")
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings).to_text()


def _caa(content):
    parts = content.strip().split(None, 2)
    if len(parts) < 3:
        raise RuleError("Erwartet werden: Flags Tag Wert (z. B. 0 issue \"letsencrypt.org\").")
    flags = _int(parts[0], "Das Flag", "flags", 0, 255)
    if flags not in (0, 128):
        raise RuleError("Das Flag muss 0 oder 128 (kritisch) sein.", "flags")
    tag = parts[1].lower()
    if tag not in CAA_TAGS:
        raise RuleError(f"Das Tag „{parts[1]}“ ist unbekannt; erlaubt: {', '.join(CAA_TAGS)}.", "tag")
    value = parts[2].strip()
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise RuleError("Der Wert hat kein schließendes Anführungszeichen.", "value")
        value = value[1:-1]
    if '"' in value or "\\" in value:
        raise RuleError("Der Wert darf keine Anführungszeichen oder \\ enthalten.", "value")
    if tag in ("issue", "issuewild", "issuemail"):
        issuer = value.split(";", 1)[0].strip()
        if issuer:
            try:
                _labels(issuer, host=True, what="Die Zertifizierungsstelle")
            except RuleError as exc:
                raise RuleError(exc.message, "value") from None
    elif tag == "iodef" and not re.match(r"^(mailto:[^@\s]+@[^@\s]+|https?://\S+)$", value):
        raise RuleError("Für iodef wird eine Adresse mailto:… oder eine URL http(s)://… erwartet.",
                        "value")
    elif not value:
        raise RuleError("Der Wert fehlt.", "value")
    return f'{flags} {tag} "{value}"'


def canonical_content(rtype, content, zone, policy, in_zone=None):
    """The record's content in canonical presentation format. Raises RuleError."""
    content = (content or "").strip() if rtype != "TXT" else (content or "")
    if not content.strip():
        raise RuleError("Der Inhalt fehlt.")
    if rtype == "A":
        try:
            return str(ipaddress.IPv4Address(content))
        except ValueError:
            hint = " Für IPv6-Adressen bitte den Typ AAAA verwenden." if ":" in content else ""
            raise RuleError(f"„{content}“ ist keine gültige IPv4-Adresse (z. B. 192.0.2.1).{hint}") from None
    if rtype == "AAAA":
        try:
            return ipaddress.IPv6Address(content).compressed
        except ValueError:
            hint = " Für IPv4-Adressen bitte den Typ A verwenden." if _is_v4(content) else ""
            raise RuleError(f"„{content}“ ist keine gültige IPv6-Adresse (z. B. 2001:db8::1).{hint}") from None
    if rtype in ("CNAME", "DNAME"):
        target = _tokens(content, 1, ["Ziel"])[0]
        text = target_name(target, zone, host=False, what="Das Ziel", in_zone=in_zone)
    elif rtype == "NS":
        text = target_name(_tokens(content, 1, ["Nameserver"])[0], zone, host=True,
                           what="Der Nameserver", in_zone=in_zone)
    elif rtype == "MX":
        pref, exchange = _tokens(content, 2, ["Priorität", "Mailserver"])
        pref = _int(pref, "Die Priorität", "preference")
        try:
            exchange = target_name(exchange, zone, host=True, what="Der Mailserver", allow_root=True,
                                   in_zone=in_zone)
        except RuleError as exc:
            raise RuleError(exc.message, "exchange") from None
        if exchange == "." and pref != 0:
            raise RuleError("Ein „kein Mailempfang“-Eintrag (Mailserver „.“) braucht die "
                            "Priorität 0.", "preference")
        text = f"{pref} {exchange}"
    elif rtype == "SRV":
        prio, weight, port, target = _tokens(content, 4, ["Priorität", "Gewicht", "Port", "Ziel"])
        prio = _int(prio, "Die Priorität", "priority")
        weight = _int(weight, "Das Gewicht", "weight")
        port = _int(port, "Der Port", "port")
        try:
            target = target_name(target, zone, host=True, what="Das Ziel", allow_root=True,
                                 in_zone=in_zone)
        except RuleError as exc:
            raise RuleError(exc.message, "target") from None
        text = f"{prio} {weight} {port} {target}"
    elif rtype == "TXT":
        return _txt(content, policy)
    elif rtype == "CAA":
        text = _caa(content)
    else:
        raise RuleError(f"Der Typ {rtype} wird nicht unterstützt.")
    try:  # dnspython has the last word on the wire format
        return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text,
                                   origin=ROOT, relativize=False).to_text()
    except dns.exception.DNSException as exc:
        raise RuleError(f"Der Inhalt ist ungültig ({exc}).") from None


def _is_v4(text):
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def rdata_targets(rtype, content):
    """Host names a record points at (MX exchange, SRV target, NS), absolute."""
    parts = content.split()
    if rtype == "MX":
        return [parts[1]] if parts[1] != "." else []
    if rtype == "SRV":
        return [parts[3]] if parts[3] != "." else []
    if rtype == "NS":
        return [parts[0]]
    return []


def check_ttl(ttl, policy):
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise RuleError("Die TTL muss eine ganze Zahl (Sekunden) sein.")
    if not policy.ttl_min <= ttl <= policy.ttl_max:
        raise RuleError(f"Die TTL {ttl} liegt außerhalb von {policy.ttl_min} bis "
                        f"{policy.ttl_max} Sekunden.")
    return ttl


def _bind_owner_exception(rel, rtype):
    """BIND's check-names exceptions for A/AAAA owners: Active Directory's ``gc._msdcs.<host>``
    and SPF ``exists`` targets below a label ``_spf``, ``_spf_verify`` or ``_spf_rate``
    (RFC 7208 5.7, appendix D.1)."""
    if rtype not in ("A", "AAAA"):
        return False
    labels = rel.split(".")
    if labels[:2] == ["gc", "_msdcs"]:
        return all(_HOST_LABEL.match(x) for x in labels[2:])
    return bool({"_spf", "_spf_verify", "_spf_rate"} & set(labels))


def check_owner_for_type(rel, rtype, zone):
    """Rules that depend on the owner name and type alone."""
    where = display(fqdn(rel, zone))
    if rtype == "SOA":
        raise RuleError(f"Der SOA-Eintrag von {where} wird vom System verwaltet und kann nicht "
                        f"geändert werden.")
    if rtype == "NS" and rel == "@":
        raise RuleError(f"Die Nameserver der Zone {where} werden vom System verwaltet. NS-Einträge "
                        f"sind nur zum Delegieren einer Subdomain (z. B. „intern“) möglich.")
    if rtype in ("CNAME", "DNAME") and rel == "@":
        raise RuleError(f"Ein {rtype}-Eintrag ist für die Domain selbst ({where}) nicht erlaubt, "
                        f"weil dort SOA und NS stehen müssen. Verwenden Sie A/AAAA-Einträge.")
    if rtype in HOST_OWNER_TYPES and rel != "@" and not _bind_owner_exception(rel, rtype):
        for label in rel.split("."):
            if label != "*" and not _HOST_LABEL.match(label):
                raise RuleError(f"Der Name „{rel}“ ist für {rtype}-Einträge kein gültiger Hostname "
                                f"(nur Buchstaben, Ziffern und Bindestrich, kein Unterstrich).")
    if rtype in ("NS", "DNAME") and rel.startswith("*"):
        raise RuleError(f"Ein {rtype}-Eintrag darf keinen Platzhalter-Namen („*“) haben.")


def srv_owner_warning(rel, zone):
    """SRV owners are ``_service._proto[.name]`` (RFC 2782); BIND loads any owner, so a
    different one (``sip``, ``s._tcp``, ``_sip._xyz``) is a warning, not an error."""
    labels = rel.split(".") if rel != "@" else []
    if len(labels) >= 2 and labels[0].startswith("_") and len(labels[0]) > 1 \
            and labels[1] in SRV_PROTOCOLS:
        return None
    return (f"{display(fqdn(rel, zone))} SRV: Der Name hat nicht die übliche Form "
            f"_dienst._protokoll (z. B. _sip._tcp oder _imaps._tcp.mail; Protokolle: "
            f"{', '.join(SRV_PROTOCOLS)}); Programme, die den Dienst suchen, finden ihn so "
            f"vermutlich nicht.")

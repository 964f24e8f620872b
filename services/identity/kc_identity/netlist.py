"""IP whitelist: static IPv4/IPv6 addresses and networks (CIDR), ``ipaddress`` module."""
import ipaddress

MAX_ENTRIES = 50


def normalise(entries):
    """``(networks as text, errors)``: one message per bad entry, keyed ``entries.<i>``."""
    out, errors = [], {}
    if not isinstance(entries, list):
        return [], {"entries": ["Bitte eine Liste von IP-Adressen oder Netzen angeben."]}
    if len(entries) > MAX_ENTRIES:
        errors["entries"] = [f"Höchstens {MAX_ENTRIES} Einträge sind möglich."]
    for i, entry in enumerate(entries):
        text = str(entry).strip() if entry is not None else ""
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            errors[f"entries.{i}"] = [f"„{text[:60]}“ ist keine gültige IPv4-/IPv6-Adresse oder kein "
                                      f"gültiges Netz (z. B. 192.0.2.10 oder 192.0.2.0/24)."]
            continue
        if net.prefixlen == 0:
            errors[f"entries.{i}"] = ["Ein Netz, das alle Adressen umfasst, ist keine Beschränkung."]
            continue
        value = str(net)
        if value not in out:
            out.append(value)
    return out, errors


def allows(networks, client_ip):
    """Empty list = any address; otherwise the client address must be in one of the networks."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for text in networks:
        net = ipaddress.ip_network(text)
        if ip.version == net.version and ip in net:
            return True
    return False

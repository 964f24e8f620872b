"""German mail texts of identity."""
from zoneinfo import ZoneInfo

import dateutil.parser

from kc_common.seller import legal_lines, seller_from_config

BERLIN = ZoneInfo("Europe/Berlin")


def _footer():
    """The provider's statutory lines (§ 35a GmbHG), from the one seller source."""
    return "-- \n" + "\n".join(legal_lines(seller_from_config())) + "\n"


def password_changed(row, data):
    when = dateutil.parser.isoparse(data["changed_at"]).astimezone(BERLIN)
    body = f"""Guten Tag {row.first_name} {row.last_name},

das Service-Passwort Ihres KundenCenter-Zugangs (Kundennummer {row.id}) wurde am \
{when:%d.%m.%Y um %H:%M} Uhr geändert (IP-Adresse: {data.get("client_ip") or "unbekannt"}).
Alle anderen angemeldeten Sitzungen wurden dabei beendet.

Wenn Sie das selbst waren, ist nichts weiter zu tun.
Wenn nicht, wenden Sie sich bitte sofort an unseren Support: {seller_from_config()["phone"]}.

Ihr KundenCenter-Team

""" + _footer()
    return {"to": row.email, "subject": "Ihr Service-Passwort wurde geändert", "body": body}


def email_changed(row, data):
    when = dateutil.parser.isoparse(data["changed_at"]).astimezone(BERLIN)
    by = "von unserem Kundenservice" if data.get("by_staff") else \
        f"im KundenCenter (IP-Adresse: {data.get('client_ip') or 'unbekannt'})"
    body = f"""Guten Tag {row.first_name} {row.last_name},

die E-Mail-Adresse Ihres KundenCenter-Zugangs (Kundennummer {row.id}) wurde am \
{when:%d.%m.%Y um %H:%M} Uhr {by} geändert:
von {data["old_email"]} auf {data["new_email"]}.

Diese Nachricht geht an die bisherige Adresse. Wenn Sie die Änderung nicht selbst veranlasst haben,
wenden Sie sich bitte sofort an unseren Support: {seller_from_config()["phone"]}.

Ihr KundenCenter-Team

""" + _footer()
    return {"to": data["old_email"], "subject": "Die E-Mail-Adresse Ihres Kundenkontos wurde geändert",
            "body": body}

"""German mail texts of identity."""

import dateutil.parser

from kc_common.clock import BERLIN
from kc_common.seller import legal_lines, seller_from_config


def _footer():
    """The provider's statutory lines (§ 35a GmbHG), from the one seller source."""
    return "-- \n" + "\n".join(legal_lines(seller_from_config())) + "\n"


def password_changed(row, data):
    when = dateutil.parser.isoparse(data["changed_at"]).astimezone(BERLIN)
    how = "über einen Link aus unserer E-Mail " if data.get("by_link") else ""
    ended = "Alle angemeldeten Sitzungen" if data.get("by_link") else "Alle anderen angemeldeten Sitzungen"
    body = f"""Guten Tag {row.first_name} {row.last_name},

das Service-Passwort Ihres KundenCenter-Zugangs (Kundennummer {row.id}) wurde am \
{when:%d.%m.%Y um %H:%M} Uhr {how}geändert (IP-Adresse: {data.get("client_ip") or "unbekannt"}).
{ended} wurden dabei beendet.

Wenn Sie das selbst waren, ist nichts weiter zu tun.
Wenn nicht, wenden Sie sich bitte sofort an unseren Support: {seller_from_config()["phone"]}.

Ihr KundenCenter-Team

""" + _footer()
    return {"to": row.email, "subject": "Ihr Service-Passwort wurde geändert", "body": body}


def email_changed(row, data, report_to=None):
    when = dateutil.parser.isoparse(data["changed_at"]).astimezone(BERLIN)
    by = "von unserem Kundenservice" if data.get("by_staff") else \
        f"im KundenCenter (IP-Adresse: {data.get('client_ip') or 'unbekannt'})"
    body = f"""Guten Tag {row.first_name} {row.last_name},

die E-Mail-Adresse Ihres KundenCenter-Zugangs (Kundennummer {row.id}) wurde am \
{when:%d.%m.%Y um %H:%M} Uhr {by} geändert:
von {data["old_email"]} auf {data["new_email"]}.

Diese Nachricht geht an die bisherige Adresse. Wenn Sie die Änderung nicht selbst veranlasst haben,
melden Sie das bitte sofort: Antworten Sie einfach auf diese E-Mail (Ihre Antwort geht als Meldung an
unseren Support) oder rufen Sie uns an: {seller_from_config()["phone"]}.

Ihr KundenCenter-Team

""" + _footer()
    mail = {"to": data["old_email"], "subject": "Die E-Mail-Adresse Ihres Kundenkontos wurde geändert",
            "body": body}
    if report_to:
        mail["reply_to"] = report_to
    return mail


def _until(value):
    when = value if not isinstance(value, str) else dateutil.parser.isoparse(value)
    return f"{when.astimezone(BERLIN):%d.%m.%Y um %H:%M} Uhr"


_LINK_PATHS = {"password_reset": "/passwort-neu", "set_password": "/passwort-neu",
               "verify_email": "/email-bestaetigen", "change_email": "/email-bestaetigen"}


def link_url(base_url, purpose, token):
    return f"{base_url.rstrip('/')}{_LINK_PATHS[purpose]}?token={token}"


def account_link(row, data, token, base_url):
    """The mail carrying a single-use link (purpose: password_reset, set_password,
    verify_email, change_email)."""
    purpose = data["purpose"]
    url = link_url(base_url, purpose, token)
    until = _until(data["expires_at"])
    greeting = f"Guten Tag {row.first_name} {row.last_name},"
    if purpose == "password_reset":
        subject = "Neues Service-Passwort festlegen"
        text = f"""für Ihren KundenCenter-Zugang (Kundennummer {row.id}) wurde ein neues Passwort angefordert (IP-Adresse: {data.get("client_ip") or "unbekannt"}). Über diesen Link legen Sie es fest:

{url}

Der Link ist bis zum {until} gültig und nur einmal verwendbar. Danach werden alle angemeldeten
Sitzungen beendet; eine aktive Zwei-Faktor-Anmeldung bleibt bestehen.

Wenn Sie kein neues Passwort angefordert haben, können Sie diese E-Mail ignorieren: Ihr bisheriges
Passwort bleibt gültig."""
    elif purpose == "set_password":
        subject = "Ihr Kundenkonto wurde angelegt"
        text = f"""unser Kundenservice hat für Sie ein Kundenkonto angelegt. Ihre Kundennummer: {row.id}.
Bitte legen Sie über diesen Link Ihr Service-Passwort fest (damit bestätigen Sie auch Ihre E-Mail-Adresse):

{url}

Der Link ist bis zum {until} gültig und nur einmal verwendbar."""
    elif purpose == "verify_email":
        subject = "Bitte bestätigen Sie Ihre E-Mail-Adresse"
        text = f"""vielen Dank für Ihre Registrierung. Ihre Kundennummer: {row.id}.
Bitte bestätigen Sie Ihre E-Mail-Adresse über diesen Link:

{url}

Der Link ist bis zum {until} gültig und nur einmal verwendbar. Anmelden können Sie sich schon jetzt;
bestellen und bezahlen können Sie, sobald Ihre E-Mail-Adresse bestätigt ist.

Wenn Sie sich nicht registriert haben, ignorieren Sie diese E-Mail bitte."""
    else:
        subject = "Bitte bestätigen Sie Ihre neue E-Mail-Adresse"
        text = f"""für Ihren KundenCenter-Zugang (Kundennummer {row.id}) soll künftig diese E-Mail-Adresse gelten: {data["email"]}.
Die Änderung wird erst wirksam, wenn Sie sie über diesen Link bestätigen:

{url}

Der Link ist bis zum {until} gültig und nur einmal verwendbar. Wenn Sie die Änderung nicht
veranlasst haben, ignorieren Sie diese E-Mail bitte: Es bleibt bei der bisherigen Adresse."""
    return {"to": data["email"], "subject": subject,
            "body": f"{greeting}\n\n{text}\n\nIhr KundenCenter-Team\n\n" + _footer()}


def signup_duplicate(row, data, base_url):
    """To an address that tried to register although it already belongs to a customer."""
    body = f"""Guten Tag {row.first_name} {row.last_name},

mit dieser E-Mail-Adresse wurde soeben versucht, ein neues Kundenkonto anzulegen (IP-Adresse: {data.get("client_ip") or "unbekannt"}). Zu dieser Adresse besteht bereits Ihr Kundenkonto
mit der Kundennummer {row.id}; ein zweites wurde nicht angelegt.

Wenn Sie Ihr Passwort vergessen haben, fordern Sie hier ein neues an:
{base_url.rstrip("/")}/passwort-vergessen

Wenn Sie das nicht waren, können Sie diese E-Mail ignorieren.

Ihr KundenCenter-Team

""" + _footer()
    return {"to": data["email"], "subject": "Sie haben bereits ein Kundenkonto", "body": body}


def data_export_ready(row, data, web_url=None):
    requested = dateutil.parser.isoparse(data["requested_at"]).astimezone(BERLIN)
    where = f"{web_url.rstrip('/')}/dokumente" if web_url else "im KundenCenter unter „Meine Dokumente“"
    body = f"""Guten Tag {row.first_name} {row.last_name},

Ihr am {requested:%d.%m.%Y um %H:%M} Uhr angeforderter Datenexport (Art. 15 und 20 DS-GVO) für die \
Kundennummer {row.id} ist fertig.

Sie finden ihn als ZIP-Archiv „{data["filename"]}“ in „Meine Dokumente“: {where}
Das Archiv enthält je Dienst eine maschinenlesbare JSON-Datei mit Ihren Daten sowie Ihre Rechnungen und
Vereinbarungen als PDF.

Wenn Sie diesen Export nicht angefordert haben, wenden Sie sich bitte sofort an unseren Support: \
{seller_from_config()["phone"]}.

Ihr KundenCenter-Team

""" + _footer()
    return {"to": row.email, "subject": "Ihr Datenexport ist bereit", "body": body}

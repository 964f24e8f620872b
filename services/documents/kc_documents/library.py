"""The document library ("Meine Dokumente") and its built-in sample documents.

Entries as in the guide's table. ``source``:

* ``versions``: PDFs with versions. Version 1 of each is built in (the German
  sample texts below, rendered from ``templates/library_text.html`` or
  ``library_form.html`` on first download and then kept in the storage);
  staff publish newer versions as PDF uploads; the newest is current and
  every older one stays retrievable.
* ``catalog``: the Preisliste, rendered on each download from catalog's live
  ``list_products`` (so it is never out of date).
* ``link``: the ServerCon Onlinehandbuch, a link (config ``SERVERCON_MANUAL_URL``).
"""
import datetime as dt

INITIAL_VERSION = "1.0"
INITIAL_DATE = dt.date(2026, 1, 1)

# slug, name, description (the guide's), source, action, template
ENTRIES = [
    ("unternehmer-agb", "Unternehmer AGB", "Allgemeine Geschäftsbedingungen für Unternehmer",
     "versions", "Download", "library_text.html"),
    ("inhaberwechsel", "Inhaberwechsel", "Vertragsinhaber ändern", "versions", "Download",
     "library_form.html"),
    ("preisliste", "Preisliste", "Preisliste für individuelle Dienstleistungen", "catalog",
     "Download", None),
    ("kuendigung", "Kündigung", "Kündigungsformular für Webhosting / Domains", "versions",
     "Download", "library_form.html"),
    ("ssl-zertifikat", "SSL Zertifikat", "SSL Zertifikate bestellen", "versions",
     "Zur Übersicht", "library_text.html"),
    ("managed-service", "Managed Service", "Service Level Agreement bei Managed Servern",
     "versions", "Download", "library_text.html"),
    ("technik-informationen", "Technik Informationen", "Technische Details zum Rechenzentrum",
     "versions", "Download", "library_text.html"),
    ("servercon-onlinehandbuch", "ServerCon Onlinehandbuch",
     "Das ServerCon Onlinehandbuch in der Wissensdatenbank", "link", "Zum Onlinehandbuch", None),
]

FILENAMES = {
    "unternehmer-agb": "Unternehmer-AGB", "inhaberwechsel": "Inhaberwechsel",
    "preisliste": "Preisliste", "kuendigung": "Kuendigung", "ssl-zertifikat": "SSL-Zertifikate",
    "managed-service": "Managed-Service-SLA", "technik-informationen": "Technik-Informationen",
}


def filename(slug, version):
    return f"{FILENAMES.get(slug, slug)}_v{version}.pdf"


# Sample texts (German, short and plausible; the provider replaces them by publishing versions).
TEXTS = {
    "unternehmer-agb": {
        "title": "Allgemeine Geschäftsbedingungen für Unternehmer",
        "intro": "Diese Bedingungen gelten für alle Verträge über Webhosting, Domains, Server und "
                 "Zusatzleistungen mit Unternehmern im Sinne des § 14 BGB.",
        "sections": [
            ("§ 1 Geltungsbereich", ["Abweichende Bedingungen des Kunden gelten nur, wenn wir ihnen "
                                     "ausdrücklich in Textform zustimmen."]),
            ("§ 2 Vertragsschluss", ["Der Vertrag kommt mit der Bestellung im KundenCenter und unserer "
                                     "Bestätigung per E-Mail zustande."]),
            ("§ 3 Leistungen", ["Der Umfang der Leistungen ergibt sich aus der Produktbeschreibung und der "
                                "jeweils gültigen Preisliste.",
                                "Die Erreichbarkeit unserer Server beträgt 99,9 % im Jahresmittel, "
                                "ausgenommen angekündigte Wartungsfenster."]),
            ("§ 4 Preise und Zahlung", ["Alle Preise verstehen sich zuzüglich der gesetzlichen "
                                        "Umsatzsteuer. Rechnungen sind innerhalb von 14 Tagen ohne "
                                        "Abzug zahlbar.",
                                        "Bei Zahlungsverzug können wir die Leistungen nach Mahnung "
                                        "sperren."]),
            ("§ 5 Laufzeit und Kündigung", ["Verträge verlängern sich um die gewählte Zahlungsperiode, "
                                            "wenn sie nicht mit einer Frist von einem Monat zum Ende der "
                                            "Periode gekündigt werden. Domains: Kündigung bis 30 Tage "
                                            "vor Ablauf."]),
            ("§ 6 Pflichten des Kunden", ["Der Kunde hält Zugangsdaten geheim, verwendet sichere "
                                          "Passwörter und speichert keine rechtswidrigen Inhalte."]),
            ("§ 7 Haftung", ["Wir haften unbeschränkt bei Vorsatz und grober Fahrlässigkeit, im Übrigen "
                             "nur für die Verletzung wesentlicher Vertragspflichten und begrenzt auf den "
                             "vertragstypischen, vorhersehbaren Schaden."]),
            ("§ 8 Schlussbestimmungen", ["Es gilt deutsches Recht. Gerichtsstand ist der Sitz des "
                                         "Anbieters."]),
        ],
    },
    "ssl-zertifikat": {
        "title": "SSL Zertifikate – Übersicht",
        "intro": "Verschlüsselte Verbindungen (HTTPS) für Ihre Domains. Bestellung im KundenCenter "
                 "unter „Bestellen“, Einrichtung auf Ihrem Hosting-Paket durch uns.",
        "sections": [
            ("Let's Encrypt (DV)", ["Kostenlos in jedem Hosting-Paket, automatische Verlängerung alle "
                                    "90 Tage, Prüfung der Domain."]),
            ("Domain Validated (DV)", ["Einfaches Zertifikat für eine Domain inkl. www, Ausstellung "
                                       "in wenigen Minuten."]),
            ("Wildcard", ["Für alle Subdomains einer Domain (*.ihre-domain.de)."]),
            ("Organization Validated (OV)", ["Mit geprüfter Firmenangabe im Zertifikat; Ausstellung nach "
                                             "Prüfung des Unternehmens in 1–3 Werktagen."]),
            ("Extended Validation (EV)", ["Höchste Prüfstufe für Shops und Banken."]),
            ("Hinweise", ["Die aktuellen Preise finden Sie in der Preisliste. Zertifikate laufen "
                          "12 Monate und verlängern sich automatisch, wenn sie nicht gekündigt werden."]),
        ],
    },
    "managed-service": {
        "title": "Service Level Agreement – Managed Server",
        "intro": "Dieses SLA ergänzt die AGB für Managed Server (FlexServer mit Servicelevel "
                 "„Managed“).",
        "sections": [
            ("1. Verfügbarkeit", ["Wir sichern eine Verfügbarkeit von 99,9 % im Kalendermonat zu. "
                                  "Angekündigte Wartungsfenster (dienstags 02:00–05:00 Uhr) zählen nicht "
                                  "als Ausfall."]),
            ("2. Betrieb", ["Wir installieren Sicherheitsupdates von Betriebssystem und Standardsoftware, "
                            "überwachen Dienste rund um die Uhr und sichern die Daten täglich "
                            "(Aufbewahrung 14 Tage)."]),
            ("3. Reaktionszeiten", ["Störung mit Totalausfall: 30 Minuten, rund um die Uhr.",
                                    "Teilstörung: 4 Stunden während der Geschäftszeiten.",
                                    "Anfragen und Änderungswünsche: 1 Werktag."]),
            ("4. Gutschriften", ["Wird die Verfügbarkeit unterschritten, schreiben wir je angefangene "
                                 "Stunde 5 % der Monatsgebühr gut, höchstens 50 % der Monatsgebühr."]),
            ("5. Mitwirkung", ["Der Kunde meldet Störungen über das KundenCenter oder telefonisch unter "
                               "Angabe des Telefon-Passworts."]),
        ],
    },
    "technik-informationen": {
        "title": "Technik Informationen – Rechenzentrum",
        "intro": "Unsere Server stehen in zertifizierten Rechenzentren in Deutschland.",
        "sections": [
            ("Standort und Zertifizierung", ["Rechenzentrum in Hannover, ISO/IEC 27001 zertifiziert, "
                                             "Betrieb ausschließlich in Deutschland."]),
            ("Energie", ["Redundante Stromversorgung (n+1) mit USV und Dieselgeneratoren, Ökostrom."]),
            ("Klima und Brandschutz", ["Kaltgangeinhausung, redundante Klimatisierung, "
                                       "Brandfrüherkennung und Gaslöschanlage."]),
            ("Netzwerk", ["Mehrere Carrier, redundante Anbindung mit über 100 Gbit/s, IPv4 und IPv6, "
                          "DDoS-Schutz."]),
            ("Sicherheit", ["Zutritt nur für berechtigtes Personal mit Chipkarte, Videoüberwachung, "
                            "24/7 besetzte Leitstelle."]),
        ],
    },
}

FORMS = {
    "inhaberwechsel": {
        "title": "Inhaberwechsel – Vertragsinhaber ändern",
        "intro": "Mit diesem Formular übertragen Sie Ihre Verträge (Hosting-Pakete, Domains, Server) "
                 "auf einen neuen Vertragsinhaber. Bitte vollständig ausfüllen, von beiden Seiten "
                 "unterschreiben und an uns senden.",
        "groups": [
            ("Bisheriger Inhaber", ["Kundennummer", "Firma", "Name, Vorname", "Straße", "PLZ, Ort"]),
            ("Neuer Inhaber", ["Firma", "Name, Vorname", "Straße", "PLZ, Ort", "E-Mail", "Telefon",
                               "USt-IdNr. (falls vorhanden)"]),
            ("Übertragene Verträge", ["Domains / Pakete (alle, wenn leer)", "Stichtag der Übertragung"]),
        ],
        "notes": ["Offene Rechnungen des bisherigen Inhabers sind vor der Übertragung auszugleichen.",
                  "Der neue Inhaber erkennt die Allgemeinen Geschäftsbedingungen an."],
        "signatures": ["Ort, Datum, Unterschrift bisheriger Inhaber",
                       "Ort, Datum, Unterschrift neuer Inhaber"],
    },
    "kuendigung": {
        "title": "Kündigung – Webhosting / Domains",
        "intro": "Hiermit kündige ich die folgenden Verträge fristgerecht zum nächstmöglichen Termin "
                 "bzw. zum angegebenen Datum. Kündigungen sind auch im KundenCenter unter "
                 "„Bestellen“ möglich.",
        "groups": [
            ("Vertragsinhaber", ["Kundennummer", "Firma", "Name, Vorname", "Straße", "PLZ, Ort"]),
            ("Zu kündigende Verträge", ["Domain(s)", "Hosting-Paket(e) / Server", "Kündigung zum"]),
            ("Domains nach Vertragsende", ["☐ löschen lassen  ☐ zu anderem Anbieter umziehen (Auth-Code)"]),
        ],
        "notes": ["Kündigungsfrist: ein Monat zum Ende der Zahlungsperiode; Domains 30 Tage vor Ablauf.",
                  "Nach Vertragsende werden alle Daten des Pakets gelöscht. Bitte sichern Sie Ihre Daten "
                  "rechtzeitig."],
        "signatures": ["Ort, Datum", "Unterschrift des Vertragsinhabers"],
    },
}


def provider_from_config(config):
    """The provider's own letterhead (library documents, AV agreement): the one seller source."""
    from kc_common.seller import seller_from_config
    return seller_from_config(config)


def template_context(slug, version, valid_from):
    context = {"slug": slug, "version": version, "valid_from": valid_from}
    if slug in TEXTS:
        context.update(TEXTS[slug])
    elif slug in FORMS:
        context.update(FORMS[slug])
    return context


def render_library(template, context, provider):
    """Worker-process function: a built-in library document as PDF."""
    from kc_documents.rendering import render_pdf
    return render_pdf(template, seller=provider, **context)


def render_pricelist(products, provider, as_of):
    """Worker-process function: the price list from catalog's live products."""
    from kc_documents.rendering import render_pdf
    return render_pdf("pricelist.html", seller=provider, products=products, as_of=as_of)


KIND_LABELS = {"domain": "Domains", "hosting": "Webhosting", "server": "Server", "addon": "Zusatzleistungen",
               "ssl": "SSL Zertifikate"}
PERIOD_LABELS = {1: "monatlich", 3: "vierteljährlich", 6: "halbjährlich", 12: "jährlich"}


def pricelist_groups(products):
    """Catalog products grouped by kind, with gross prices (VAT half-up to the cent)."""
    from decimal import Decimal

    from kc_common.schemas import money
    groups = {}
    for p in products:
        net = Decimal(str(p.get("price_net") or "0"))
        rate = Decimal(str(p.get("vat_rate") or "0"))
        gross = money(net * (1 + rate / 100))
        periods = p.get("periods") or []
        unit = "je Jahr" if p.get("kind") == "domain" else "je Monat"
        groups.setdefault(p.get("kind") or "addon", []).append({
            "name": p.get("name") or p.get("id"), "id": p.get("id"), "net": net, "gross": gross,
            "vat_rate": rate, "unit": unit,
            "periods": ", ".join(PERIOD_LABELS.get(m, f"{m} Monate") for m in periods)})
    order = ["hosting", "domain", "server", "addon", "ssl"]
    return [(KIND_LABELS.get(k, k), groups[k]) for k in sorted(groups, key=lambda k: (
        order.index(k) if k in order else len(order), k))]

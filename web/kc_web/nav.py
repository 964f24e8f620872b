"""The guide's sidebar: groups, their entries (label, endpoint) and the endpoints each covers."""
NAV = [
    ("Meine Produkte", [
        ("Webhosting & Domains", "products.webhosting"),
        ("Server", "products.servers"),
        ("Andere Produkte", "products.other"),
        ("Bestellen", "order.index"),
    ]),
    ("Meine Buchhaltung", [
        ("Kundenkonto", "account.index"),
        ("Zahlung vornehmen", "account.pay"),
    ]),
    ("Meine Daten", [
        ("Adressdaten", "data.address"),
        ("Passwörter", "data.passwords"),
        ("Zahlungsdetails", "data.payment_details"),
        ("Ansprechpartner", "data.contacts"),
        ("Mitteilungen", "data.notifications"),
        ("Datenschutz", "data.privacy"),
        ("IP-Whitelist", "data.whitelist"),
        ("Anmeldung & Sicherheit", "data.security"),
        ("Daten exportieren", "data.export"),
        ("Konto schließen", "data.closure"),
    ]),
    ("Meine Dokumente", "documents.index"),
    ("Supportanfrage erstellen", "support.index"),
]

# Pages below an entry light up that entry (blueprint.endpoint -> entry endpoint).
SECTION = {
    "products.login_link": "products.webhosting",
    "dns.zone": "products.webhosting", "dns.import_zone": "products.webhosting",
    "dns.export_zone": "products.webhosting",
    "products.traffic": "products.servers", "products.server_traffic": "products.servers",
    "order.product": "order.index", "order.tariff": "order.index", "order.cancel": "order.index",
    "account.invoice_pdf": "account.index", "account.girocode": "account.pay",
    "data.contact_edit": "data.contacts", "support.thread": "support.index", "support.attachment": "support.index",
}


def active_group(endpoint):
    """(group label, entry endpoint) of the page being shown."""
    entry = SECTION.get(endpoint, endpoint)
    for label, items in NAV:
        if isinstance(items, str):
            if items == entry:
                return label, entry
            continue
        for _, item_endpoint in items:
            if item_endpoint == entry:
                return label, entry
    return None, entry

"""The KundenCenter in a real Chromium: every screen (screenshot + axe-core), and the flows of the
guide end to end against the real system (gateway, services, PSP simulator, mail sink)."""
import re
import uuid

import pyotp
import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from kcweb_pages import log_in, shot

from kc_common.testing import wait_for

SCREENS = [
    ("webhosting", "/produkte/webhosting", "Webhosting & Domains"),
    ("server", "/produkte/server", "Server"),
    ("traffic", "/produkte/server/traffic", "Traffic anzeigen"),
    ("andere-produkte", "/produkte/andere", "Andere Produkte"),
    ("bestellen", "/bestellen", "Bestellen"),
    ("bestellen-domain", "/bestellen/domain-de", "Bestellen: Domain .de"),
    ("kundenkonto", "/konto", "Kundenkonto"),
    ("zahlung", "/zahlung", "Zahlung vornehmen"),
    ("adressdaten", "/daten/adresse", "Adressdaten verwalten"),
    ("passwoerter", "/daten/passwoerter", "Passwörter verwalten"),
    ("zahlungsdetails", "/daten/zahlungsdetails", "Zahlungsdetails verwalten"),
    ("ansprechpartner", "/daten/ansprechpartner", "Ansprechpartner"),
    ("mitteilungen", "/daten/mitteilungen", "Mitteilungen"),
    ("datenschutz", "/daten/datenschutz", "Datenschutz"),
    ("ip-whitelist", "/daten/ip-whitelist", "IP-Whitelist"),
    ("sicherheit", "/daten/sicherheit", "Anmeldung & Sicherheit"),
    ("daten-exportieren", "/daten/export", "Daten exportieren"),
    ("konto-schliessen", "/daten/konto-schliessen", "Konto schließen"),
    ("dokumente", "/dokumente", "Meine Dokumente"),
    ("support", "/support", "Supportanfrage erstellen"),
]
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def check_a11y(page, name):
    """axe-core: no serious or critical violation on the screen."""
    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad)


def text_of(page, selector="main"):
    """The visible text, with the no-break spaces of German amounts (1,00\u00a0€) as spaces."""
    return page.inner_text(selector).replace("\u00a0", " ")


# --- Anmeldung -----------------------------------------------------------------------------------
def test_login_errors_and_logout(new_page, web, system):
    page = new_page()
    page.goto(web + "/produkte/server")
    assert "/anmeldung" in page.url
    shot(page, "anmeldung")
    check_a11y(page, "anmeldung")
    page.fill("#f-login", "100001")
    page.fill("#f-password", "falsch-falsch")
    page.click("button[type=submit]")
    assert "Kundennummer/E-Mail oder Passwort ist falsch." in page.inner_text("#login-error")
    page.fill("#f-password", "Hafen-Leuchtturm-2026")
    page.click("button[type=submit]")
    page.wait_for_url("**/produkte/server")  # back to where the customer wanted to go
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "kc_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # nothing for JavaScript to read
    # the API session behind it is ended by the logout
    page.click("button:has-text('Abmelden')")
    page.wait_for_url("**/anmeldung")
    assert "Sie wurden abgemeldet." in page.inner_text("main")
    page.goto(web + "/konto")
    assert "/anmeldung" in page.url


def test_login_throttling_names_the_wait(new_page, web, make_customer):
    email = f"throttle-{uuid.uuid4().hex[:6]}@example.org"
    make_customer(email=email)
    page = new_page()
    page.goto(web + "/anmeldung")
    for _ in range(6):
        page.fill("#f-login", email)
        page.fill("#f-password", "nicht-das-passwort")
        page.click("button[type=submit]")
    message = page.inner_text("#login-error")
    assert "Zu viele fehlgeschlagene Anmeldeversuche" in message
    assert re.search(r"Bitte warten Sie \d+ (Minuten|Sekunden)", message), message


def test_two_factor_login_with_a_recovery_code(new_page, web, make_customer):
    email = f"totp-{uuid.uuid4().hex[:6]}@example.org"
    make_customer(email=email, password="Kunden-Passwort-2026")
    page = log_in(new_page(), web, email, "Kunden-Passwort-2026")
    page.goto(web + "/daten/sicherheit")
    page.fill("#f-setup-password", "Kunden-Passwort-2026")
    page.click("button:has-text('Zwei-Faktor-Anmeldung einrichten')")
    assert page.locator(".qr svg").count() == 1  # the otpauth URI as a QR code
    secret = page.inner_text("#totp-secret").strip()
    shot(page, "zwei-faktor-einrichten")
    check_a11y(page, "zwei-faktor-einrichten")
    page.fill("#f-totp-code", pyotp.TOTP(secret).now())
    page.click("button:text('Einschalten')")
    codes = [c.strip() for c in page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10
    shot(page, "zwei-faktor-codes")
    page.reload()
    assert page.locator("#recovery-codes").count() == 0  # shown once
    page.click("button:has-text('Abmelden')")

    page.fill("#f-login", email)
    page.fill("#f-password", "Kunden-Passwort-2026")
    page.click("button[type=submit]")
    page.wait_for_url("**/anmeldung/code")
    shot(page, "anmeldung-code")
    check_a11y(page, "anmeldung-code")
    page.fill("#f-otp", "000000")
    page.click("button[type=submit]")
    assert "falsch" in page.inner_text("#otp-error")
    page.fill("#f-otp", codes[0])
    page.click("button[type=submit]")
    page.wait_for_url("**/produkte/webhosting")


# --- every screen ------------------------------------------------------------------------------
def test_every_screen_renders_with_real_data_and_is_accessible(demo_page, web):
    page = demo_page
    for name, path, heading in SCREENS:
        resp = page.goto(web + path)
        assert resp.status == 200, (path, resp.status)
        assert page.inner_text("h1") == heading
        timing = resp.headers["server-timing"]
        calls = int(re.search(r'desc="(\d+) calls"', timing).group(1))
        assert calls <= 3, (path, timing)
        shot(page, name)
        check_a11y(page, name)
    assert not page.console_errors, page.console_errors  # no CSP violation, no script error

    # the guide's columns and the demo data
    page.goto(web + "/produkte/webhosting")
    head = page.inner_text("table.data thead")
    for column in ("Domain", "Paket", "Zugang", "Zahlungsperiode", "Preis", "nächste Rechnung", "Vertragsstatus"):
        assert column in head
    assert "partnercenter.de" in text_of(page) and "businesshosting" in text_of(page)
    page.fill("#f-q", "partnercenter")
    page.press("#f-q", "Enter")
    assert "partnercenter.de" in text_of(page) and "shophosting" not in text_of(page)

    page.goto(web + "/produkte/server")
    body = text_of(page)
    for text in ("Servicelevel", "Traffic inkl.", "IP Adressen", "Admin Reseller", "Cloud Platform Login",
                 "178.250.9.79", "20.000 GB", "Managed", "Root"):
        assert text in body
    page.goto(web + "/produkte/server/traffic")
    assert page.locator("svg.chart").count() >= 2

    page.goto(web + "/konto")
    assert re.search(r"Ihr aktueller Kontostand: -?[\d.]+,\d\d\s€ (Guthaben|offener Betrag)", text_of(page))
    for column in ("Rnr", "Datum", "Typ", "Erste Position der Rechnung", "Betrag", "Zahlungsart"):
        assert column in page.inner_text("table.data thead")

    page.goto(web + "/dokumente")
    for name in ("Unternehmer AGB", "Inhaberwechsel", "Preisliste", "Kündigung", "SSL Zertifikat",
                 "Managed Service", "Technik Informationen", "ServerCon Onlinehandbuch"):
        assert name in text_of(page)

    # responsive: a phone's width, the menu behind a button
    phone = page.context.browser.new_context(viewport={"width": 390, "height": 844}, locale="de-DE")
    try:
        small = phone.new_page()
        log_in(small, web)
        assert small.locator("#sidebar").is_hidden()
        small.click("button.menu-toggle")
        assert small.locator("#sidebar").is_visible()
        assert small.evaluate("document.documentElement.scrollWidth") <= 390 + 1
        shot(small, "webhosting-handy")
        small.goto(web + "/konto")
        shot(small, "kundenkonto-handy")
    finally:
        phone.close()


def test_zugang_opens_the_panel_with_a_fresh_single_use_link(demo_page, web, system):
    page = demo_page
    # the panels are external systems: answer for ServerCon here
    page.context.route("https://servercon.kundencenter.example/**",
                       lambda route: route.fulfill(status=200, content_type="text/html",
                                                   body="<html lang='de'><title>ServerCon</title>ServerCon</html>"))
    with page.context.expect_page() as popup:
        page.locator("table.data button.link-button", has_text="Login").first.click()
    panel = popup.value
    panel.wait_for_url("https://servercon.kundencenter.example/**")
    token = re.search(r"token=([^&]+)", panel.url).group(1)
    first = requests.post(system.url + "/api/v1/panel-logins", json={"token": token})
    again = requests.post(system.url + "/api/v1/panel-logins", json={"token": token})
    assert first.status_code == 200 and again.status_code == 409


# --- Bestellen, DNS Modul, Zahlung ----------------------------------------------------------------
def test_order_a_domain_edit_its_zone_and_pay_by_card(new_page, web, make_customer, system):
    email = f"bestellung-{uuid.uuid4().hex[:6]}@example.org"
    make_customer(email=email, password="Kunden-Passwort-2026")
    page = log_in(new_page(), web, email, "Kunden-Passwort-2026")
    domain = f"kc-web-{uuid.uuid4().hex[:8]}.de"

    page.goto(web + "/bestellen/domain-de")
    page.fill("#f-domain", "falsch.com")
    page.click("button:has-text('Weiter zur Übersicht')")  # the API's quote checks the order already
    assert "Die Domain passt nicht zum Produkt (.de)." in page.inner_text(".field.has-error")
    page.fill("#f-domain", domain)
    page.click("button:has-text('Weiter zur Übersicht')")
    summary = text_of(page, "table.sum")
    assert "9,90 €" in summary and "MwSt. 19 %" in summary and "1,88 €" in summary and "11,78 €" in summary
    shot(page, "bestellung-pruefen")
    check_a11y(page, "bestellung-pruefen")
    button = page.locator("button:has-text('Jetzt kostenpflichtig bestellen')")
    button.dblclick()  # a double click orders once
    page.wait_for_url("**/produkte/webhosting")
    assert "Vielen Dank! Ihre Bestellung" in page.inner_text(".flashes")
    assert page.locator(f"table.data a:text('{domain}')").count() == 1

    # its zone in the DNS Modul (dns creates it on the order event)
    def zone_ready():
        resp = page.goto(web + f"/dns/{domain}")
        return resp.status == 200
    wait_for(zone_ready, timeout=20, interval=0.5, message="the zone of the new domain")
    assert "falsche Eintragungen" in page.inner_text(".notice-warn").replace("Falsche", "falsche")
    shot(page, "dns-modul")
    check_a11y(page, "dns-modul")
    www = page.locator("tr[data-row]", has=page.locator("input:not([type=hidden])[value='www']")).filter(
        has=page.locator("select option[selected]:text-is('A')")).first
    www.locator("input[id$='-content']").fill("192.0.2.77")
    new = page.locator("tr.new-row").first
    new.locator("input[id$='-name']").fill("mail")
    new.locator("input[id$='-content']").fill("192.0.2.300")  # invalid: the error shows at this row
    page.click("button:has-text('Änderungen speichern')")
    error_row = page.locator("tr.has-error")
    assert error_row.count() == 1 and "keine gültige IPv4-Adresse" in error_row.inner_text()
    shot(page, "dns-fehler")
    error_row.locator("input[id$='-content']").fill("192.0.2.30")
    page.click("button:has-text('Änderungen speichern')")
    assert "Die Änderungen sind gespeichert" in page.inner_text(".flashes")
    assert page.locator("input:not([type=hidden])[value='192.0.2.77']").count() == 1
    assert page.locator("input:not([type=hidden])[value='mail']").count() == 1

    # a concurrent edit: the second window's change set is refused and explained
    other = page.context.new_page()
    other.goto(web + f"/dns/{domain}")
    page.locator("input:not([type=hidden])[value='192.0.2.77']").fill("192.0.2.78")
    page.click("button:has-text('Änderungen speichern')")
    other.locator("input:not([type=hidden])[value='192.0.2.77']").fill("192.0.2.79")
    other.click("button:has-text('Änderungen speichern')")
    assert "Die Zone wurde inzwischen geändert" in other.inner_text(".notice-error")
    shot(other, "dns-konflikt")
    other.click("text=Aktuellen Stand neu laden")
    assert other.locator("input:not([type=hidden])[value='192.0.2.78']").count() == 1

    # zone file export and the import's dry-run report
    with page.expect_download() as download:
        page.click("text=Zonendatei herunterladen")
    zone_text = open(download.value.path(), encoding="utf-8").read()
    assert "192.0.2.78" in zone_text and "$ORIGIN" in zone_text
    page.click("text=Zonendatei importieren")
    page.fill("#f-zone_file", zone_text + "\nftp 3600 IN A 192.0.2.40\nkaputt 3600 IN A 999.1.1.1\n")
    page.click("button:text('Prüfen')")
    report = page.inner_text("section.card")
    assert "Prüfbericht (noch nichts gespeichert)" in report and "999.1.1.1" in report
    shot(page, "dns-import-bericht")
    page.click("button:has-text('Import ausführen')")
    assert "Import ausgeführt" in page.inner_text(".flashes")
    assert page.locator("input:not([type=hidden])[value='ftp']").count() == 1

    # Zahlung vornehmen: card through the PSP simulator and back
    wait_for(lambda: "offener Betrag" in (page.goto(web + "/zahlung") and text_of(page, ".balance-box")),
             timeout=20, interval=0.5, message="the invoice of the order")
    assert "-11,78 € offener Betrag" in text_of(page, ".balance-box")
    page.click("button:has-text('per Kreditkarte zahlen')")
    page.wait_for_url(re.compile(r".*/pay/psp_.*"))  # the interstitial follows to the PSP by itself
    assert "11.78" in page.content()
    page.click("button:text('Bezahlen')")
    page.wait_for_url(re.compile(r".*/zahlung\?payment_id=.*"))
    payment_id = re.search(r"payment_id=([^&]+)", page.url).group(1)
    page.locator("#payment-result.notice-success").wait_for(timeout=20000)  # the page refreshes itself
    assert "0,00 € Guthaben" in text_of(page, ".balance-box")
    shot(page, "zahlung-erfolgreich")
    # booked exactly once although the simulator delivers the webhook twice
    wait_for(lambda: system.log("billing").count(f"for payment {payment_id}") >= 2, timeout=20,
             message="the duplicate webhook")
    page.goto(web + "/konto")
    types = page.locator("table.data tbody td[data-label='Typ']").all_inner_texts()
    assert types.count("ZAHLUNG") == 1 and "0,00 € Guthaben" in text_of(page, ".balance-box")


def test_tariff_change_and_cancellation(demo_page, web):
    page = demo_page
    page.goto(web + "/produkte/webhosting")
    row = page.locator("table.data tbody tr", has_text="partnercenter.de")
    row.locator("summary").click()
    row.locator("text=Tarifwechsel").click()
    shot(page, "tarifwechsel")
    check_a11y(page, "tarifwechsel")
    page.check("input[value='hosting-business-pro']")
    page.click("button:has-text('Weiter zur Übersicht')")
    body = text_of(page)
    assert "Das Upgrade gilt ab heute" in body and "Anteilig brutto" in body
    shot(page, "tarifwechsel-pruefen")
    page.click("button:has-text('Tarif jetzt wechseln')")
    page.wait_for_url("**/produkte/webhosting")
    assert "businesshosting Pro gilt ab heute" in page.inner_text(".flashes")
    assert "businesshosting Pro" in page.inner_text("table.data")

    row = page.locator("table.data tbody tr", has_text="profihost-demo.com")
    row.locator("summary").click()
    row.locator("text=Kündigen").click()
    end = page.inner_text("dl.facts")
    assert "Vertragsende bei Kündigung heute" in end
    end_date = re.search(r"\d\d\.\d\d\.\d{4}", end).group(0)
    shot(page, "kuendigung")
    check_a11y(page, "kuendigung")
    page.click("button.btn-danger")
    page.wait_for_url("**/produkte/webhosting")
    assert f"gekündigt zum {end_date}" in page.inner_text(".flashes")
    assert f"Gekündigt zum {end_date}" in page.inner_text("table.data tbody tr:has-text('profihost-demo.com')")


# --- Kundenkonto, Adressdaten, Support ----------------------------------------------------------------
def test_invoice_pdf_download(demo_page, web):
    page = demo_page
    page.goto(web + "/konto")
    link = page.locator("table.data a", has_text="PDF").first
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.startswith("Rechnung_")
    with open(download.value.path(), "rb") as f:
        assert f.read(5) == b"%PDF-"


def test_address_change_shows_the_german_field_error(demo_page, web):
    page = demo_page
    page.goto(web + "/daten/adresse")
    assert page.locator("#f-customer_id").get_attribute("readonly") is not None
    assert "Inhaberwechsel" in page.inner_text("#f-company-hint")
    page.fill("#f-zip", "3015")
    page.fill("#f-city", "Hannover-Mitte")
    page.click("button:has-text('Speichern')")
    field = page.locator(".field.has-error", has=page.locator("#f-zip"))
    assert "Diese Postleitzahl passt nicht zum Land DE" in field.inner_text()
    assert page.input_value("#f-city") == "Hannover-Mitte"  # the input is kept
    shot(page, "adressdaten-fehler")
    check_a11y(page, "adressdaten-fehler")
    page.fill("#f-zip", "30159")
    page.click("button:has-text('Speichern')")
    assert "Ihre Adressdaten sind gespeichert." in page.inner_text(".flashes")
    assert page.input_value("#f-city") == "Hannover-Mitte"


def test_support_request_with_attachment_and_the_staff_reply(demo_page, web, system, staff_headers, tmp_path):
    page = demo_page
    subject = f"Webseite langsam {uuid.uuid4().hex[:6]}"
    (tmp_path / "screenshot.png").write_bytes(PNG)
    (tmp_path / "notiz.txt").write_text("Seit gestern lädt die Startseite 10 Sekunden.\n")
    page.goto(web + "/support")
    page.fill("#f-subject", subject)
    page.fill("#f-message", "Bitte prüfen Sie die Ladezeit von partnercenter.de.")
    page.set_input_files("#f-attachments", [str(tmp_path / "screenshot.png"), str(tmp_path / "notiz.txt")])
    page.click("button:has-text('Anfrage senden')")
    page.wait_for_url(re.compile(r".*/support/SR-\d+"))
    number = page.url.rsplit("/", 1)[1]
    assert "screenshot.png" in text_of(page) and "notiz.txt" in text_of(page)

    agent = staff_headers("support")
    resp = requests.post(f"{system.url}/api/v1/staff/support/requests/{number}/replies", headers=agent,
                         files=[("message", (None, "Wir haben den Cache geleert – bitte erneut testen."))])
    assert resp.status_code == 201, resp.text
    page.reload()
    thread = page.inner_text("ol.thread")
    assert "Wir haben den Cache geleert" in thread and "Support-Team" in thread
    assert "beantwortet" in page.inner_text("dl.facts")
    shot(page, "supportanfrage")
    check_a11y(page, "supportanfrage")
    page.fill("#f-reply", "Danke, jetzt ist es schnell.")
    page.set_input_files("#f-reply-attachments", str(tmp_path / "notiz.txt"))
    page.click("button:has-text('Antwort senden')")
    assert "Ihre Antwort ist gesendet." in page.inner_text(".flashes")
    page.goto(web + "/support")
    assert subject in text_of(page)


def test_ip_whitelist_asks_before_locking_out(demo_page, web):
    page = demo_page
    page.goto(web + "/daten/ip-whitelist")
    assert page.inner_text("#current-ip").strip()
    page.fill("#f-entries", "203.0.113.7")
    page.click("button:has-text('Speichern')")
    assert "Bitte bestätigen Sie das ausdrücklich" in page.inner_text(".notice-warn")
    shot(page, "ip-whitelist-bestaetigen")
    page.fill("#f-entries", "")
    page.click("button:has-text('Speichern')")
    assert "jeder Adresse" in page.inner_text(".flashes")


@pytest.mark.parametrize("path", ["/abmelden", "/daten/adresse", "/support"])
def test_a_post_without_csrf_token_is_refused(demo_page, web, path):
    page = demo_page
    status = page.evaluate("""async (path) => {
        const r = await fetch(path, {method: 'POST', body: new URLSearchParams({x: '1'})});
        return r.status; }""", path)
    assert status == 400

"""Meine Daten and the money previews in a real Chromium: Telefon-Passwort anzeigen, SEPA in
Zahlungsdetails, Ansprechpartner, Mitteilungen, AV signing with the signed PDF, the IP-whitelist
refusal at login, the order quote and the Tarifwechsel proration shown before confirming (and
then booked with exactly those amounts), and no horizontal overflow at 1280 px and a phone's width.

Each test that changes something uses its own new customer, so the demo account stays as the
other tests expect it."""
import re
import uuid

import requests
from kcweb_pages import log_in, shot
from test_browser import SCREENS, check_a11y, text_of

from kc_common.testing import wait_for

PASSWORD = "Kunden-Passwort-2026"


def fresh_customer(new_page, web, make_customer, prefix, **fields):
    email = f"{prefix}-{uuid.uuid4().hex[:6]}@example.org"
    customer_id, headers = make_customer(email=email, password=PASSWORD, **fields)
    return customer_id, headers, email, log_in(new_page(), web, email, PASSWORD)


def api_bookings(system, headers):
    return requests.get(system.url + "/api/v1/me/account", headers=headers).json()["bookings"]["total"]


def booked_amounts(page, web):
    page.goto(web + "/konto")
    return [t.replace("\u00a0", " ").split("\n")[0].strip()
            for t in page.locator("table.data tbody td[data-label='Betrag']").all_inner_texts()]


# --- Passwörter ---------------------------------------------------------------------------------
def test_phone_password_set_and_shown(new_page, web, make_customer):
    _, _, _, page = fresh_customer(new_page, web, make_customer, "telefon")
    page.goto(web + "/daten/passwoerter")
    phone = page.locator("section[aria-labelledby=h-phone]")
    assert "Noch nicht gesetzt." in phone.inner_text()
    assert phone.locator("button:has-text('Telefon Passwort anzeigen')").count() == 0
    phone.locator("#f-phone_password").fill("Kaffee-1234")
    phone.locator("#f-phone_password_repeat").fill("Kaffee-1234")
    phone.locator("button:has-text('Speichern')").click()
    assert "Ihr Telefon-Passwort ist gespeichert." in page.inner_text(".flashes")
    assert page.locator("#phone-password").count() == 0  # not shown until asked for
    page.click("button:has-text('Telefon Passwort anzeigen')")
    assert page.inner_text("#phone-password").strip() == "Kaffee-1234"
    shot(page, "telefon-passwort-angezeigt")
    check_a11y(page, "telefon-passwort-angezeigt")


# --- Zahlungsdetails: SEPA-Lastschrift --------------------------------------------------------------
def test_sepa_direct_debit_with_iban_and_mandate(new_page, web, make_customer):
    customer_id, _, _, page = fresh_customer(new_page, web, make_customer, "sepa")
    page.goto(web + "/daten/zahlungsdetails")
    assert page.locator("#f-iban").is_hidden()  # the SEPA fields show only for Lastschrift
    page.select_option("#f-method", "sepa")
    assert page.locator("#f-iban").is_visible()
    page.fill("#f-iban", "DE89 3704 0044 0532 0130 01")  # a wrong check digit
    page.fill("#f-account_holder", "Erika Musterfrau")
    page.check("input[name=sepa_mandate_accepted]")
    page.click("button:has-text('Speichern')")
    field = page.locator(".field.has-error", has=page.locator("#f-iban"))
    assert field.count() == 1 and field.inner_text().strip(), page.inner_text("main")
    shot(page, "zahlungsdetails-iban-fehler")
    page.select_option("#f-method", "sepa")
    page.fill("#f-iban", "DE89 3704 0044 0532 0130 00")
    page.fill("#f-account_holder", "Erika Musterfrau")
    page.check("input[name=sepa_mandate_accepted]")
    page.click("button:has-text('Speichern')")
    assert "Ihre Zahlungsdetails sind gespeichert." in page.inner_text(".flashes")
    assert page.locator("#f-method").input_value() == "sepa"
    sepa = page.inner_text("fieldset.sepa")
    assert "DE89 **** 3000" in sepa, sepa  # the IBAN masked
    assert f"Mandatsreferenz KC{customer_id}-M001" in sepa and re.search(r"vom \d\d\.\d\d\.\d{4}", sepa)
    shot(page, "zahlungsdetails-sepa")
    check_a11y(page, "zahlungsdetails-sepa")


# --- Ansprechpartner ------------------------------------------------------------------------------
def test_contact_persons_add_edit_delete(new_page, web, make_customer):
    _, _, _, page = fresh_customer(new_page, web, make_customer, "kontakt")
    page.goto(web + "/daten/ansprechpartner")
    assert "Noch kein Ansprechpartner hinterlegt." in text_of(page)
    page.fill("#f-contact-name", "Agentur Beispiel")
    page.fill("#f-contact-email", "keine-adresse")
    page.click("button:has-text('Hinzufügen')")
    assert page.locator(".field.has-error", has=page.locator("#f-contact-email")).count() == 1
    page.fill("#f-contact-email", "technik@agentur.example")
    page.fill("#f-contact-role", "Technik")
    page.check("input[name=may_support]")
    page.click("button:has-text('Hinzufügen')")
    assert "Agentur Beispiel ist als Ansprechpartner eingetragen." in page.inner_text(".flashes")
    row = page.locator("table.data tbody tr", has_text="Agentur Beispiel")
    assert "technik@agentur.example" in row.inner_text() and "Support" in row.inner_text()
    shot(page, "ansprechpartner-liste")

    row.locator("a", has_text="Bearbeiten").click()
    page.fill("#f-contact-role", "Technik und Rechnungen")
    page.check("input[name=may_billing]")
    page.click("button:has-text('Speichern')")
    assert "Der Ansprechpartner ist gespeichert." in page.inner_text(".flashes")
    row = page.locator("table.data tbody tr", has_text="Agentur Beispiel")
    assert "Technik und Rechnungen" in row.inner_text() and "Support, Rechnungen" in row.inner_text()

    row.locator("a", has_text="Bearbeiten").click()
    check_a11y(page, "ansprechpartner-bearbeiten")
    page.once("dialog", lambda dialog: dialog.accept())  # "… wirklich entfernen?"
    page.click("button:has-text('Ansprechpartner entfernen')")
    assert "Der Ansprechpartner ist entfernt." in page.inner_text(".flashes")
    assert "Agentur Beispiel" not in text_of(page, "table.data")


# --- Mitteilungen -------------------------------------------------------------------------------
def test_notification_settings_are_saved(new_page, web, make_customer):
    _, _, _, page = fresh_customer(new_page, web, make_customer, "mitteilung")
    page.goto(web + "/daten/mitteilungen")
    newsletter = page.locator("input[name=topics][value=newsletter]")
    maintenance = page.locator("input[name=topics][value=maintenance]")
    assert not newsletter.is_checked() and maintenance.is_checked()
    assert page.locator("input[name=topics][value=invoice]").is_disabled()  # mandatory
    newsletter.check()
    maintenance.uncheck()
    page.click("button:has-text('Speichern')")
    assert "Ihre Einstellungen zu Mitteilungen sind gespeichert." in page.inner_text(".flashes")
    page.reload()
    assert page.locator("input[name=topics][value=newsletter]").is_checked()
    assert not page.locator("input[name=topics][value=maintenance]").is_checked()
    shot(page, "mitteilungen-gespeichert")


# --- Datenschutz: AV-Vereinbarung ------------------------------------------------------------------
def test_av_agreement_signed_and_the_signed_pdf_linked(new_page, web, make_customer):
    _, _, _, page = fresh_customer(new_page, web, make_customer, "av", company="Beispiel Daten GmbH")
    page.goto(web + "/daten/datenschutz")
    assert "ist noch nicht abgeschlossen" in text_of(page)
    page.fill("#f-signer_name", "Erika Musterfrau")
    page.click("button:has-text('Vereinbarung abschließen')")
    assert page.locator(".field.has-error").count() >= 1  # position and the confirmation missing
    page.fill("#f-signer_name", "Erika Musterfrau")
    page.fill("#f-signer_position", "Geschäftsführerin")
    page.check("input[name=accept]")
    page.click("button:has-text('Vereinbarung abschließen')")
    assert "Vereinbarung zur Auftragsverarbeitung ist abgeschlossen" in page.inner_text(".flashes")
    assert "Sie haben die aktuelle Vereinbarung" in text_of(page)

    # documents renders the signed PDF from identity's event: then the page links it
    link = page.locator("a", has_text="Unterzeichnetes PDF")
    wait_for(lambda: page.reload() and link.count() == 1, timeout=30, interval=0.5,
             message="the signed AV PDF")
    assert "Erika Musterfrau, Geschäftsführerin" in text_of(page, "table.data")
    shot(page, "datenschutz-unterzeichnet")
    check_a11y(page, "datenschutz-unterzeichnet")
    pdf = page.request.get(web + link.get_attribute("href"))
    assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"


# --- IP-Whitelist: the refusal at login ------------------------------------------------------------
def test_ip_whitelist_refuses_the_login_in_german(new_page, web, make_customer):
    _, _, email, page = fresh_customer(new_page, web, make_customer, "whitelist")
    page.goto(web + "/daten/ip-whitelist")
    page.fill("#f-entries", "203.0.113.7")
    page.click("button:has-text('Speichern')")
    page.check("input[name=confirm_lockout]")
    page.click("button:has-text('Speichern')")
    # the session itself is now refused from here: the next page asks for a login
    page.goto(web + "/konto")
    page.wait_for_url("**/anmeldung**")
    page.fill("#f-login", email)
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    message = page.inner_text("#login-error")
    assert "Der Zugang von Ihrer IP-Adresse (127.0.0.1) ist durch die IP-Whitelist dieses " \
           "Kundenkontos nicht erlaubt." in message, message
    assert "/anmeldung" in page.url
    shot(page, "anmeldung-ip-whitelist")
    check_a11y(page, "anmeldung-ip-whitelist")


# --- Bestellen: the quote before confirming is what is booked ------------------------------------------
def test_order_quote_shown_before_confirming_is_booked(new_page, web, make_customer, system):
    _, headers, _, page = fresh_customer(new_page, web, make_customer, "angebot")
    page.goto(web + "/bestellen/hosting-business")
    page.fill("#f-domain", f"angebot-{uuid.uuid4().hex[:6]}.de")
    page.select_option("#f-period_months", "12")
    page.click("button:has-text('Weiter zur Übersicht')")
    quote = page.locator("#order-quote")
    caption = quote.locator("caption").inner_text()
    assert re.search(r"Zahlungsperiode \d\d\.\d\d\.\d{4} bis \d\d\.\d\d\.\d{4}", caption), caption
    net = quote.locator("[data-quote=net]").inner_text().replace("\u00a0", " ")
    gross = quote.locator("[data-quote=gross]").inner_text().replace("\u00a0", " ")
    assert net == "154,80 €" and "MwSt. 19 %" in text_of(page, "#order-quote")  # 12 × 12.90
    assert gross == "184,21 €"  # 154.80 + 29.41 VAT
    shot(page, "bestellung-angebot")
    assert api_bookings(system, headers) == 0  # the preview books nothing
    page.click("button:has-text('Jetzt kostenpflichtig bestellen')")
    page.wait_for_url("**/produkte/webhosting")
    wait_for(lambda: booked_amounts(page, web), timeout=20, interval=0.5, message="the invoice")
    assert booked_amounts(page, web) == ["-" + gross]


# --- Tarifwechsel: the proration before confirming is what is booked ------------------------------------
def test_tariff_change_proration_shown_before_confirming_is_booked(new_page, web, make_customer, system):
    _, headers, _, page = fresh_customer(new_page, web, make_customer, "tarifwechsel")
    domain = f"tarif-{uuid.uuid4().hex[:6]}.de"
    resp = requests.post(system.url + "/api/v1/me/orders", headers=headers, json={"items": [
        {"product_id": "hosting-business-start", "domain": domain, "period_months": 12}]})
    assert resp.status_code == 201, resp.text
    wait_for(lambda: len(booked_amounts(page, web)) == 1, timeout=20, interval=0.5, message="the invoice")
    page.goto(web + "/produkte/webhosting")
    row = page.locator("table.data tbody tr", has_text=domain)
    row.locator("summary").click()
    row.locator("text=Tarifwechsel").click()
    page.check("input[value='hosting-business']")
    page.click("button:has-text('Weiter zur Übersicht')")
    quote = page.locator("#tariff-quote")
    lines = quote.locator("tbody tr").all_inner_texts()
    assert len(lines) == 2 and lines[0].startswith("Gutschrift businesshosting Start") \
        and lines[1].startswith("Tarifwechsel businesshosting"), lines
    assert re.search(r"\(\d+/36[56] Tage\)", lines[0]), lines
    gross = quote.locator("[data-quote=gross]").inner_text().replace("\u00a0", " ")
    assert re.fullmatch(r"\d+,\d\d €", gross) and gross != "0,00 €", gross
    shot(page, "tarifwechsel-anteilig")
    check_a11y(page, "tarifwechsel-anteilig")
    assert api_bookings(system, headers) == 1  # the preview books nothing
    page.click("button:has-text('Tarif jetzt wechseln')")
    page.wait_for_url("**/produkte/webhosting")
    wait_for(lambda: len(booked_amounts(page, web)) == 2, timeout=20, interval=0.5,
             message="the proration invoice")
    assert booked_amounts(page, web)[0] == "-" + gross


# --- no horizontal overflow: 1280 px and a phone ---------------------------------------------------
def overflow(page):
    """Pixels the page or a table box is wider than it may be (0: nothing to scroll sideways)."""
    return page.evaluate("""() => {
        const doc = document.documentElement.scrollWidth - window.innerWidth;
        const wraps = [...document.querySelectorAll('.table-wrap')].map(w => w.scrollWidth - w.clientWidth);
        return {doc, wraps: Math.max(0, ...wraps)}; }""")


def test_no_horizontal_overflow_at_1280_and_on_a_phone(new_page, web):
    for width, height, name in ((1280, 900, "1280"), (390, 844, "handy")):
        page = log_in(new_page(width=width, height=height), web)
        page.goto(web + "/produkte/andere")
        assert page.locator("table.data tbody tr").count() >= 1
        assert overflow(page) == {"doc": 0, "wraps": 0}, (width, overflow(page))
        shot(page, f"andere-produkte-{name}")
        for _, path, _ in SCREENS:  # no screen scrolls sideways as a whole
            page.goto(web + path)
            assert overflow(page)["doc"] <= 0, (width, path, overflow(page))

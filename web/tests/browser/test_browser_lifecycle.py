"""The DS-GVO pages of Meine Daten in a real Chromium: Daten exportieren (requested, its state, the
ZIP downloaded through Meine Dokumente once every service's part is in) and Konto schließen (what
happens is said first; a wrong password is refused at the field in German, the right one leaves
the closure "beantragt"). Each test uses its own new customer: a closed account can't come back."""
import io
import zipfile

from kcweb_pages import shot
from test_browser import check_a11y, text_of
from test_browser_data import PASSWORD, fresh_customer

from kc_common.testing import wait_for


def test_data_export_requested_and_downloaded(new_page, web, make_customer):
    _, _, _, page = fresh_customer(new_page, web, make_customer, "export")
    page.goto(web + "/daten/export")
    assert page.inner_text("h1") == "Daten exportieren"
    assert "noch keinen Datenexport" in page.inner_text("#export-state")
    check_a11y(page, "daten-exportieren-leer")
    page.click("button:has-text('Datenexport anfordern')")
    assert "Ihr Datenexport ist beantragt." in page.inner_text(".flashes")
    state = page.inner_text("#export-state")
    assert "Wird erstellt" in state or "Fertig" in state, state
    shot(page, "daten-exportieren-beantragt")

    link = page.locator("#export-download")
    wait_for(lambda: page.reload() and link.count() == 1, timeout=60, interval=1, message="the export's ZIP")
    assert "Fertig" in page.inner_text("#export-state")
    href = link.get_attribute("href")
    assert "/dokumente/eigene/" in href
    archive = page.request.get(web + href)
    assert archive.status == 200 and archive.body()[:2] == b"PK"
    names = zipfile.ZipFile(io.BytesIO(archive.body())).namelist()
    assert any(name.endswith(".json") for name in names), names
    shot(page, "daten-exportieren-fertig")
    check_a11y(page, "daten-exportieren-fertig")
    page.goto(web + "/dokumente")  # the same archive in Meine Dokumente
    assert page.locator(f"a[href='{href}']").count() == 1
    assert not page.console_errors, page.console_errors


def test_closure_wrong_then_right_password(new_page, web, make_customer):
    _, _, _, page = fresh_customer(new_page, web, make_customer, "schliessen")
    page.goto(web + "/daten/konto-schliessen")
    assert page.inner_text("h1") == "Konto schließen"
    assert "nicht beantragt" in page.inner_text("#closure-state")
    said = text_of(page, "#closure-consequences")
    for text in ("Kündigungsfrist", "ausgeglichen", "löschen", "zehn Jahre", "§ 147 AO"):
        assert text in said, said
    check_a11y(page, "konto-schliessen")

    # without the explicit confirmation nothing happens
    page.fill("#f-password", PASSWORD)
    page.click("button:has-text('Konto endgültig schließen')")
    assert "Bitte bestätigen Sie die Schließung." in page.inner_text(".field.has-error")
    assert "nicht beantragt" in page.inner_text("#closure-state")

    page.check("#f-confirm")
    page.fill("#f-password", "Falsches-Passwort-1")
    page.click("button:has-text('Konto endgültig schließen')")
    field = page.locator(".field.has-error", has=page.locator("#f-password"))
    assert field.count() == 1, page.inner_text("main")
    assert "Das Service-Passwort ist falsch." in field.inner_text()
    assert page.locator("#f-password").get_attribute("aria-invalid") == "true"
    assert "nicht beantragt" in page.inner_text("#closure-state")
    shot(page, "konto-schliessen-falsches-passwort")
    check_a11y(page, "konto-schliessen-falsches-passwort")

    page.check("#f-confirm")
    page.fill("#f-password", PASSWORD)
    page.click("button:has-text('Konto endgültig schließen')")
    assert "Die Schließung Ihres Kontos ist beantragt." in page.inner_text(".flashes")
    state = page.inner_text("#closure-state")
    assert "beantragt" in state and "nicht beantragt" not in state, state
    assert page.locator("#f-password").count() == 0  # no second request
    shot(page, "konto-schliessen-beantragt")
    check_a11y(page, "konto-schliessen-beantragt")

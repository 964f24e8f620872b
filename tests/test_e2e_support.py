"""Supportanfrage erstellen and the staff desk through the gateway's HTTP, every process real.

(The telephone-password check needs identity's verify_phone_password, built in parallel:
it is covered on the real bus with an identity stub in services/support/tests.)
"""
from email.message import EmailMessage

import pytest
import requests

from kc_common.testing import wait_for

# The e2e system inherits this environment (collection runs before the session's system starts):
# switch on replies by e-mail for the inbound-mail webhook test.
from tests.conftest import SUPPORT_INBOUND_SECRET as INBOUND_SECRET

ME = "/api/v1/me/support/requests"
DESK = "/api/v1/staff/support/requests"
DEMO_MAIL = "demo@kundencenter.example"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200
FORM = {"name": "Max Mustermann", "subject": "Mailpostfach voll", "message": "Bitte Quota erhöhen.",
        "category": "email"}


@pytest.fixture(scope="module")
def demo(demo_headers):
    return demo_headers


@pytest.fixture(scope="module")
def agent(staff_headers):
    return staff_headers("support")


def post_form(system, headers, path=ME, form=None, files=()):
    """multipart/form-data as a browser sends it (also without files)."""
    fields = [(k, (None, v)) for k, v in (form if form is not None else FORM).items()]
    return requests.post(system.url + path, headers=headers,
                         files=fields + [("attachments", f) for f in files])


def mails_for(system, number, to=DEMO_MAIL):
    return [m for m in system.mails(to=to) if number in m["Subject"]]


def test_open_request_with_attachment_list_read_download_and_mail(system, demo):
    resp = post_form(system, demo, files=[("Postfach Ansicht.png", PNG, "image/png"),
                                          ("log.txt", "Quota überschritten\n".encode(), "text/plain")])
    assert resp.status_code == 201, resp.text
    request = resp.json()
    number = request["number"]
    assert request["state"] == "open" and request["subject"] == "Mailpostfach voll"
    files = request["messages"][0]["attachments"]
    assert [f["filename"] for f in files] == ["Postfach_Ansicht.png", "log.txt"]

    listed = requests.get(system.url + ME, headers=demo).json()
    assert number in [i["number"] for i in listed["items"]] and listed["total"] >= 1
    assert requests.get(f"{system.url}{ME}/{number}", headers=demo).json()["number"] == number

    download = requests.get(f"{system.url}{ME}/{number}/attachments/{files[0]['id']}", headers=demo)
    assert download.status_code == 200 and download.content == PNG
    assert "Postfach_Ansicht.png" in download.headers["Content-Disposition"]
    assert download.headers["ETag"].strip('"') == files[0]["sha256"]

    mail = wait_for(lambda: mails_for(system, number), message="confirmation mail")[0]
    assert "eingegangen" in mail["Subject"] and "Bitte Quota erhöhen." in mail.get_body().get_content()


@pytest.mark.parametrize("form, files, status, field", [
    (dict(FORM, name="Fremde Person"), [], 403, "name"),
    (dict(FORM, subject="  "), [], 400, "subject"),        # against the form's schema
    (dict(FORM, message=""), [], 400, "message"),
    (FORM, [("rechnung.pdf", EXE, "application/pdf")], 422, "attachments.0"),   # the file's content
    (FORM, [("riesig.log", b"x" * (10 * 1024 * 1024 + 1), "text/plain")], 422, "attachments.0"),
])
def test_bad_requests_are_refused_with_a_clear_german_message(system, demo, form, files, status, field):
    before = requests.get(system.url + ME, headers=demo).json()["total"]
    resp = post_form(system, demo, form=form, files=files)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert field in body["fields"] and body["message"]
    if status == 403:
        assert body["error"] == "forbidden" and "Ansprechpartner" in body["message"]
    assert requests.get(system.url + ME, headers=demo).json()["total"] == before


def test_json_instead_of_the_form_is_refused(system, demo):
    resp = requests.post(system.url + ME, headers=demo, json=FORM)
    assert resp.status_code == 400 and resp.json()["error"] == "validation_failed"


def test_another_customers_request_is_not_found(system, demo, make_customer):
    _, other = make_customer()
    request = post_form(system, demo, files=[("a.png", PNG, "image/png")]).json()
    number, att = request["number"], request["messages"][0]["attachments"][0]["id"]
    for resp in (requests.get(f"{system.url}{ME}/{number}", headers=other),
                 requests.get(f"{system.url}{ME}/{number}/attachments/{att}", headers=other),
                 post_form(system, other, path=f"{ME}/{number}/messages", form={"message": "Hallo"})):
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert requests.get(system.url + ME, headers=other).json()["total"] == 0


def test_staff_desk_handles_a_request_and_the_customer_gets_the_mails(system, demo, agent, staff_headers):
    number = post_form(system, demo, form=dict(FORM, subject="SSL läuft ab", category="hosting")).json()["number"]
    wait_for(lambda: mails_for(system, number), message="confirmation mail")

    listed = requests.get(system.url + DESK, headers=agent, params={"state": "open", "q": number}).json()
    assert [i["number"] for i in listed["items"]] == [number] and listed["items"][0]["customer_id"] == 100001

    resp = requests.put(f"{system.url}{DESK}/{number}/assignee", headers=agent, json={"staff_id": "me"})
    assert resp.status_code == 200 and resp.json()["assignee_staff_id"]
    assert requests.post(f"{system.url}{DESK}/{number}/notes", headers=agent,
                         json={"note": "Intern: Zertifikat manuell erneuern."}).status_code == 201
    resp = post_form(system, agent, path=f"{DESK}/{number}/replies",
                     form={"message": "Das Zertifikat ist erneuert."}, files=[("cert.txt", b"ok\n", "text/plain")])
    assert resp.status_code == 201 and resp.json()["state"] == "answered"

    seen = requests.get(f"{system.url}{ME}/{number}", headers=demo).json()
    assert [m["kind"] for m in seen["messages"]] == ["customer", "staff"]
    assert seen["messages"][1]["attachments"][0]["filename"] == "cert.txt"
    assert "Intern" not in str(seen) and seen["state_text"].startswith("beantwortet")
    reply_mail = wait_for(lambda: [m for m in mails_for(system, number) if "Antwort" in m["Subject"]],
                          message="reply mail")[0]
    assert "Das Zertifikat ist erneuert." in reply_mail.get_body().get_content()

    resp = post_form(system, demo, path=f"{ME}/{number}/messages", form={"message": "Danke!"},
                     files=[("danke.png", PNG, "image/png")])
    assert resp.status_code == 201 and resp.json()["state"] == "open"

    resp = requests.put(f"{system.url}{DESK}/{number}/state", headers=agent, json={"state": "closed"})
    assert resp.status_code == 200 and resp.json()["state"] == "closed"
    wait_for(lambda: [m for m in mails_for(system, number) if "geschlossen" in m["Subject"]],
             message="state mail")

    # roles and realms
    assert requests.get(system.url + DESK, headers=staff_headers("billing")).status_code == 403
    assert requests.get(system.url + DESK, headers=demo).status_code == 401
    assert requests.get(system.url + ME, headers=agent).status_code == 401
    bad = requests.put(f"{system.url}{DESK}/{number}/state", headers=agent, json={"state": "vergessen"})
    assert bad.status_code == 400 and "state" in bad.json()["fields"]
    assert requests.get(f"{system.url}{DESK}/SR-999999", headers=agent).status_code == 404


def test_openapi_describes_the_support_operations(system):
    doc = requests.get(system.url + "/api/openapi.json").json()
    form = doc["paths"][ME]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]
    for path in (ME, f"{ME}/{{number}}", f"{ME}/{{number}}/messages",
                 f"{ME}/{{number}}/attachments/{{attachment_id}}", DESK, f"{DESK}/{{number}}/calls",
                 f"{DESK}/{{number}}/notes", f"{DESK}/{{number}}/state", f"{DESK}/{{number}}/assignee"):
        assert path in doc["paths"], path


def test_a_reply_by_email_lands_in_the_thread(system, demo, agent):
    number = post_form(system, demo, form=dict(FORM, subject="Per Mail weiter")).json()["number"]
    post_form(system, agent, path=f"{DESK}/{number}/replies", form={"message": "Welche Domain?"})
    reply = wait_for(lambda: [m for m in mails_for(system, number) if "Antwort" in m["Subject"]],
                     message="reply mail")[0]
    msg = EmailMessage()
    msg["From"] = "Max Mustermann <demo@kundencenter.example>"
    msg["To"] = reply["Reply-To"]
    msg["Subject"] = "Re: " + reply["Subject"]
    msg.set_content("Es geht um meine-firma.de.\n\nAm 26.11.2026 schrieb KundenCenter:\n> Welche Domain?\n")
    url = system.url + "/api/v1/support/inbound-mail"
    assert requests.post(url, data=msg.as_bytes(), headers={"X-Inbound-Secret": "falsch"}).status_code == 401
    resp = requests.post(url, data=msg.as_bytes(), headers={"X-Inbound-Secret": INBOUND_SECRET,
                                                           "Content-Type": "message/rfc822"})
    assert resp.status_code == 201 and resp.json()["number"] == number, resp.text
    thread = requests.get(f"{system.url}{ME}/{number}", headers=demo).json()
    assert thread["messages"][-1]["body"] == "Es geht um meine-firma.de." and thread["state"] == "open"
    assert thread["messages"][-1]["via"] == "email"


def test_telephone_support_verifies_the_callers_phone_password_through_identity(system, demo, agent):
    """The desk checks what the caller says against identity, never sees the password, and
    records the call on the request (wrong password: recorded as not verified)."""
    from kc_identity.demo import DEMO_PHONE_PASSWORD
    number = post_form(system, demo, form=dict(FORM, subject="Anruf wegen DNS")).json()["number"]
    calls = f"{system.url}{DESK}/{number}/calls"

    def record(name, password):
        resp = requests.post(calls, headers=agent, json={"caller_name": name, "phone_password": password})
        assert resp.status_code == 201, resp.text
        return resp.json()["calls"][-1]  # the answer is the request with every recorded call
    wrong = record("Max Mustermann", "falsch")
    assert wrong["verified"] is False and wrong["name_authorised"] is True
    right = record("Max Mustermann", DEMO_PHONE_PASSWORD)
    assert right["verified"] is True and right["password_verified"] is True
    stranger = record("Eve Fremd", DEMO_PHONE_PASSWORD)
    assert stranger["name_authorised"] is False and stranger["verified"] is False
    desk_view = requests.get(f"{system.url}{DESK}/{number}", headers=agent).json()
    assert [c["verified"] for c in desk_view["calls"]] == [False, True, False]
    assert DEMO_PHONE_PASSWORD not in str(desk_view)
    assert requests.post(calls, headers=demo, json={"caller_name": "x", "phone_password": "y"}).status_code == 401

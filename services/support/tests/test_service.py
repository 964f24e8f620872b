"""support on the real bus and PostgreSQL, identity stubbed (tests/conftest.py), real SMTP."""
import base64
import os

import pytest
from nameko.testing.services import entrypoint_hook
from sqlalchemy import create_engine, select, text

from kc_common import testing
from kc_common.db import normalise_url
from kc_common.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from kc_common.testing import wait_for
from kc_support.models import calls, metadata
from kc_support.service import SupportService

from .conftest import IdentityStub
from .files import EXE, LOG, PDF, PNG, upload

inbox = metadata.tables["inbox"]
MAX = {"customer_id": 100001}
ERIKA = {"customer_id": 100002}
AGENT = {"staff_id": "staff-anna", "staff_roles": ["support"]}
BILLING_AGENT = {"staff_id": "staff-bernd", "staff_roles": ["billing"]}
FORM = {"name": "Max Mustermann", "subject": "Shop langsam", "message": "Seit gestern lädt der Shop langsam.",
        "category": "hosting"}


@pytest.fixture
def support_config(config, smtp_server, tmp_path):
    return dict(config, **smtp_server.config, ATTACHMENT_DIR=str(tmp_path / "store"),
                ATTACHMENT_MAX_FILE_BYTES=4096, ATTACHMENT_MAX_TOTAL_BYTES=6000, ATTACHMENT_MAX_FILES=3)


@pytest.fixture
def support(container_factory, support_config):
    container_factory(IdentityStub, support_config).start()
    container = container_factory(SupportService, support_config)
    container.start()
    return container


@pytest.fixture
def db(support_config):
    engine = create_engine(normalise_url(support_config["DATABASE_URL"]))
    yield engine
    engine.dispose()


def call(container, method, context, *args, **kwargs):
    """kc_common.testing.call with the caller's context first (every call here names its caller)."""
    return testing.call(container, method, *args, context=context, **kwargs)


def open_request(support, form=None, files=(), context=MAX):
    return call(support, "open_request", context, dict(form or FORM, files=list(files)))


def handled(db, consumer, count=1):
    """Wait until the mail handler ``consumer`` has processed ``count`` events (inbox rows)."""
    def done():
        with db.connect() as conn:
            return conn.execute(select(inbox).where(inbox.c.consumer == f"support.{consumer}")).all()
    return wait_for(lambda: len(done()) >= count, message=f"{consumer} handled")


def stored_files(support_config):
    root = support_config["ATTACHMENT_DIR"]
    return [f for _, _, names in os.walk(root) for f in names] if os.path.exists(root) else []


# --- opening -----------------------------------------------------------------------------

def test_open_request_with_attachments_is_stored_published_and_confirmed_by_mail(
        support, support_config, capture_events, smtp_server):
    events = capture_events("support", "support_request_opened")
    request = open_request(support, files=[upload("shop screenshot.png", PNG, "image/png"),
                                           upload("fehler.log", LOG, "text/plain")])
    assert request["number"].startswith("SR-") and request["state"] == "open"
    assert request["state_text"] == "offen" and request["category_text"] == "Webhosting"
    [message] = request["messages"]
    assert message["kind"] == "customer" and message["author_name"] == "Max Mustermann"
    assert [(a["filename"], a["content_type"], a["size"]) for a in message["attachments"]] == [
        ("shop_screenshot.png", "image/png", len(PNG)), ("fehler.log", "text/plain", len(LOG))]
    assert len(stored_files(support_config)) == 2

    data = events.wait(1)[0]["data"]
    assert {k: data[k] for k in ("number", "customer_id", "subject", "state")} == {
        "number": request["number"], "customer_id": 100001, "subject": "Shop langsam", "state": "open"}

    [mail] = smtp_server.wait(1, to="max@kunde.example")
    assert request["number"] in mail["Subject"] and "eingegangen" in mail["Subject"]
    body = mail.get_body().get_content()
    assert "Guten Tag Max Mustermann" in body and "Seit gestern lädt der Shop langsam." in body
    assert "shop_screenshot.png" in body
    assert mail["Reply-To"].startswith("support+") and mail["Reply-To"].endswith("@kundencenter.example")

    png = call(support, "download_attachment", MAX, request["number"], message["attachments"][0]["id"])
    assert base64.b64decode(png["content_b64"]) == PNG and png["filename"] == "shop_screenshot.png"


def test_a_registered_contact_person_may_open_and_both_get_the_mail(support, smtp_server):
    request = open_request(support, dict(FORM, name="Petra Partner"))
    assert request["author_name"] == "Petra Partner"
    [mail] = smtp_server.wait(1)
    assert "max@kunde.example" in mail["To"] and "petra@agentur.example" in mail["To"]
    assert "Guten Tag Petra Partner" in mail.get_body().get_content()


def test_an_unauthorised_name_is_refused_and_nothing_is_saved(support, support_config, capture_events):
    events = capture_events("support")
    with pytest.raises(Forbidden) as err:
        open_request(support, dict(FORM, name="Mallory Fremd"), files=[upload("a.pdf", PDF)])
    assert "nicht berechtigt" in err.value.message and "Ansprechpartner" in err.value.message
    assert "name" in err.value.details["fields"]
    assert call(support, "list_requests", MAX)["total"] == 0
    assert stored_files(support_config) == [] and events.drain(support_config["DATABASE_URL"]) == []


@pytest.mark.parametrize("form, files, fields", [
    ({"subject": "   "}, [], {"subject"}),
    ({"name": "", "message": ""}, [], {"name", "message"}),
    ({"category": "kaffee"}, [], {"category"}),
    ({"subject": "x" * 201}, [], {"subject"}),
    ({"subject": "Hallo\nBcc: alle@example.org", "message": "a\x00b"}, [], {"subject", "message"}),
    ({"name": "Max\r\nMustermann"}, [], {"name"}),
    ({}, [upload("rechnung.pdf", EXE, "application/pdf")], {"attachments.0"}),      # disguised .exe
    ({}, [upload("bild.pdf", PNG)], {"attachments.0"}),                              # wrong extension
    ({}, [upload("a.pdf", PDF), upload("gross.log", b"x" * 4097)], {"attachments.1"}),  # per file
    ({}, [upload(f"{i}.log", b"y" * 2500) for i in range(3)], {"attachments"}),        # per request
    ({}, [upload(f"{i}.log", b"z") for i in range(4)], {"attachments"}),               # too many
    ({"subject": ""}, [upload("x.exe", EXE)], {"subject", "attachments.0"}),          # all at once
    ({"extra": "1"}, [], {"extra"}),
])
def test_bad_input_is_refused_naming_each_field_and_nothing_is_saved(support, support_config, form,
                                                                      files, fields):
    with pytest.raises(ValidationFailed) as err:
        open_request(support, dict(FORM, **form), files=files)
    assert set(err.value.fields) == fields
    assert call(support, "list_requests", MAX)["total"] == 0 and stored_files(support_config) == []


def test_staff_cannot_use_customer_routes_and_customers_not_the_desk(support):
    with pytest.raises(Unauthenticated):
        open_request(support, context=AGENT)
    with pytest.raises(Unauthenticated):
        call(support, "staff_list_requests", MAX)
    with pytest.raises(Forbidden):
        call(support, "staff_list_requests", BILLING_AGENT)


# --- the customer's view -----------------------------------------------------------------

def test_another_customers_request_and_attachments_are_not_found(support, support_config):
    request = open_request(support, files=[upload("a.pdf", PDF)])
    number, att_id = request["number"], request["messages"][0]["attachments"][0]["id"]
    with pytest.raises(NotFound):
        call(support, "get_request", ERIKA, number)
    with pytest.raises(NotFound):
        call(support, "reply", ERIKA, number, {"message": "Ich mische mich ein.", "files": []})
    with pytest.raises(NotFound):
        call(support, "download_attachment", ERIKA, number, att_id)
    other = open_request(support, dict(FORM, name="Erika Musterfrau"), context=ERIKA)
    with pytest.raises(NotFound):  # own request number, another request's attachment
        call(support, "download_attachment", ERIKA, other["number"], att_id)
    assert call(support, "list_requests", ERIKA)["total"] == 1
    assert len(call(support, "get_request", MAX, number)["messages"]) == 1


def test_customer_lists_and_replies_with_attachment(support, capture_events):
    events = capture_events("support", "support_request_replied")
    first = open_request(support)
    second = open_request(support, dict(FORM, subject="Domain umziehen", category="domain"))
    page = call(support, "list_requests", MAX, {"per_page": 1})
    assert page["total"] == 2 and page["items"][0]["number"] == second["number"]
    replied = call(support, "reply", MAX, first["number"],
                   {"message": "Hier der Screenshot.", "files": [upload("s.png", PNG)]})
    assert [m["body"] for m in replied["messages"]][-1] == "Hier der Screenshot."
    assert replied["messages"][-1]["attachments"][0]["filename"] == "s.png"
    assert events.wait(1)[0]["data"]["author"] == "customer"
    assert call(support, "list_requests", MAX, {"per_page": 1})["items"][0]["number"] == first["number"]
    with pytest.raises(Forbidden):
        call(support, "reply", MAX, first["number"], {"message": "x", "name": "Mallory", "files": []})
    with pytest.raises(ValidationFailed) as err:
        call(support, "reply", MAX, first["number"], {"message": " ", "files": [upload("x.exe", EXE)]})
    assert set(err.value.fields) == {"message", "attachments.0"}


# --- the staff desk ----------------------------------------------------------------------

def test_staff_desk_assign_reply_note_state_with_mails_and_events(support, capture_events, smtp_server, db):
    replied_events = capture_events("support", "support_request_replied")
    closed_events = capture_events("support", "support_request_closed")
    request = open_request(support, files=[upload("a.pdf", PDF)])
    number = request["number"]
    smtp_server.wait(1)  # the confirmation

    assert call(support, "staff_list_requests", AGENT, {"assignee": "none"})["total"] == 1
    view = call(support, "staff_assign", AGENT, number, {"staff_id": "me"})
    assert view["assignee_staff_id"] == "staff-anna"
    assert call(support, "staff_list_requests", AGENT, {"assignee": "me"})["items"][0]["number"] == number
    assert call(support, "staff_list_requests", AGENT, {"assignee": "none"})["total"] == 0

    call(support, "staff_add_note", AGENT, number, {"note": "Kunde ist VIP, Server prüfen."})
    view = call(support, "staff_reply", AGENT, number, {"message": "Wir haben den Cache geleert.",
                                                         "files": [upload("anleitung.pdf", PDF)]})
    assert view["state"] == "answered"
    assert [m["kind"] for m in view["messages"]] == ["customer", "note", "staff"]
    assert [m["internal"] for m in view["messages"]] == [False, True, False]
    staff_att = view["messages"][0]["attachments"][0]
    assert base64.b64decode(call(support, "staff_download_attachment", AGENT, number,
                                 staff_att["id"])["content_b64"]) == PDF

    # the customer sees the reply, never the note
    customer = call(support, "get_request", MAX, number)
    assert [m["kind"] for m in customer["messages"]] == ["customer", "staff"]
    assert "VIP" not in str(customer) and customer["state"] == "answered"
    staff_file = customer["messages"][1]["attachments"][0]
    assert staff_file["filename"] == "anleitung.pdf"
    assert base64.b64decode(call(support, "download_attachment", MAX, number, staff_file["id"])["content_b64"]) == PDF
    with pytest.raises(NotFound):
        call(support, "download_attachment", MAX, number, "abc")
    assert replied_events.wait(1)[0]["data"]["author"] == "staff"

    mails = smtp_server.wait(2, to="max@kunde.example")
    reply_mail = mails[1]
    assert "Antwort" in reply_mail["Subject"] and number in reply_mail["Subject"]
    assert "Wir haben den Cache geleert." in reply_mail.get_body().get_content()
    assert "anleitung.pdf" in reply_mail.get_body().get_content()
    assert "VIP" not in reply_mail.get_body().get_content()

    # closing: event + (optional, wanted) state mail
    view = call(support, "staff_set_state", AGENT, number, {"state": "closed", "category": "server"})
    assert view["state"] == "closed" and view["closed_at"] and view["category"] == "server"
    assert closed_events.wait(1)[0]["data"]["number"] == number
    state_mail = smtp_server.wait(3, to="max@kunde.example")[2]
    assert "geschlossen" in state_mail["Subject"]

    # the customer writes again: open again, staff see it in the open filter
    call(support, "reply", MAX, number, {"message": "Leider wieder langsam.", "files": []})
    assert call(support, "staff_list_requests", AGENT, {"state": "open"})["items"][0]["number"] == number
    handled(db, "mail_staff_reply", 2)  # the customer's own reply is not mailed back
    assert len(smtp_server.messages(to="max@kunde.example")) == 3


def test_state_mail_respects_the_notification_preference_but_replies_are_always_sent(
        support, smtp_server, db):
    request = open_request(support, dict(FORM, name="Erika Musterfrau"), context=ERIKA)
    call(support, "staff_reply", AGENT, request["number"], {"message": "Erledigt.", "state": "closed"})
    call(support, "staff_set_state", AGENT, request["number"], {"state": "open"})
    handled(db, "mail_state_changed")
    handled(db, "mail_staff_reply")
    subjects = [m["Subject"] for m in smtp_server.wait(2, to="erika@kunde.example")]
    assert len(smtp_server.messages(to="erika@kunde.example")) == 2
    assert "eingegangen" in subjects[0] and "Antwort" in subjects[1]


def test_staff_filters_by_state_category_customer_and_search(support):
    a = open_request(support, dict(FORM, subject="DNS Eintrag fehlt", category="domain"))
    open_request(support, dict(FORM, subject="Rechnung doppelt", category="billing"))
    open_request(support, dict(FORM, name="Erika Musterfrau", subject="Server down", category="server"),
                 context=ERIKA)
    call(support, "staff_set_state", AGENT, a["number"], {"state": "closed"})

    def numbers(**params):
        return {i["subject"] for i in call(support, "staff_list_requests", AGENT, params)["items"]}
    assert numbers(state="closed") == {"DNS Eintrag fehlt"}
    assert numbers(category="billing") == {"Rechnung doppelt"}
    assert numbers(customer_id=100002) == {"Server down"}
    assert numbers(q="rechnung") == {"Rechnung doppelt"}
    assert numbers(q=a["number"].lower()) == {"DNS Eintrag fehlt"}
    assert numbers(q="100%_") == set()
    with pytest.raises(ValidationFailed) as err:
        call(support, "staff_list_requests", AGENT, {"state": "kaputt", "per_page": "500"})
    assert set(err.value.fields) == {"state", "per_page"}
    with pytest.raises(NotFound):
        call(support, "staff_get_request", AGENT, "SR-999999")


def test_phone_call_is_verified_through_identity_and_recorded_without_the_password(support, db):
    number = open_request(support)["number"]
    view = call(support, "staff_record_call", AGENT, number,
                {"caller_name": "Max Mustermann", "phone_password": "Blauer-Elefant-42",
                 "note": "Ruft wegen Shop an."})
    view = call(support, "staff_record_call", AGENT, number,
                {"caller_name": "Max Mustermann", "phone_password": "geraten"})
    view = call(support, "staff_record_call", AGENT, number,
                {"caller_name": "Mallory Fremd", "phone_password": "Blauer-Elefant-42"})
    assert [(c["caller_name"], c["name_authorised"], c["password_verified"], c["verified"])
            for c in view["calls"]] == [("Max Mustermann", True, True, True),
                                        ("Max Mustermann", True, False, False),
                                        ("Mallory Fremd", False, True, False)]
    assert view["calls"][0]["staff_id"] == "staff-anna"
    assert "Blauer-Elefant" not in str(view) and "geraten" not in str(view)
    with db.connect() as conn:
        dump = str(conn.execute(select(calls)).all()) + str(conn.execute(text(
            "SELECT payload FROM outbox")).all())
    assert "Blauer-Elefant" not in dump and "geraten" not in dump
    assert "calls" not in call(support, "get_request", MAX, number)  # the customer never sees calls
    with pytest.raises(ValidationFailed) as err:
        call(support, "staff_record_call", AGENT, number, {"caller_name": "", "phone_password": "  "})
    assert set(err.value.fields) == {"caller_name", "phone_password"}


def test_ping(container_factory, config):
    container = container_factory(SupportService, config)
    container.start()
    with entrypoint_hook(container, "ping") as ping:
        assert ping() == {"service": "support", "status": "ok"}


# --- replies by e-mail -------------------------------------------------------------------

SECRET = {"X-Inbound-Secret": "geheim-123"}


def reply_mail_to(reply_to, body="Jetzt geht es wieder, danke!", attachments=()):
    from email.message import EmailMessage
    msg = EmailMessage()
    msg["From"] = "Max Mustermann <max@kunde.example>"
    msg["To"] = reply_to
    msg["Subject"] = "Re: Antwort auf Ihre Supportanfrage"
    msg.set_content(body + "\n\nAm 26.11.2026 schrieb KundenCenter:\n> Wir haben den Cache geleert.\n")
    for name, data, maintype, subtype in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_string()


@pytest.fixture
def mail_support(container_factory, support_config):
    config = dict(support_config, SUPPORT_INBOUND_SECRET="geheim-123")
    container_factory(IdentityStub, config).start()
    container = container_factory(SupportService, config)
    container.start()
    return container


def test_a_reply_by_mail_lands_in_the_thread_by_its_token(mail_support, smtp_server, capture_events):
    events = capture_events("support", "support_request_replied")
    number = open_request(mail_support)["number"]
    call(mail_support, "staff_reply", AGENT, number, {"message": "Wir haben den Cache geleert."})
    reply_to = [m for m in smtp_server.wait(2, to="max@kunde.example") if "Antwort" in m["Subject"]][0]["Reply-To"]

    result = call(mail_support, "ingest_mail", {}, reply_mail_to(str(reply_to), attachments=[
        ("log.txt", b"alles gut\n", "text", "plain")]), SECRET)
    assert result == {"accepted": True, "number": number, "reason": None}
    thread = call(mail_support, "get_request", MAX, number)
    last = thread["messages"][-1]
    assert (last["kind"], last["via"], last["body"]) == ("customer", "email", "Jetzt geht es wieder, danke!")
    assert last["attachments"][0]["filename"] == "log.txt" and thread["state"] == "open"
    assert [e["data"]["via"] for e in events.wait(2)] == ["web", "email"]

    # an automatic reply (out of office) never enters the thread
    auto = reply_mail_to(str(reply_to)).replace("Subject:", "Auto-Submitted: auto-replied\nSubject:", 1)
    assert call(mail_support, "ingest_mail", {}, auto, SECRET)["accepted"] is False
    assert len(call(mail_support, "get_request", MAX, number)["messages"]) == 3


def test_inbound_mail_needs_the_secret_and_a_known_token(mail_support, support):
    number = open_request(mail_support)["number"]
    raw = reply_mail_to("support+0123456789abcdef0123456789abcdef@kundencenter.example")
    with pytest.raises(Unauthenticated):
        call(mail_support, "ingest_mail", {}, raw, {"X-Inbound-Secret": "falsch"})
    with pytest.raises(NotFound):  # a well-formed token no request has
        call(mail_support, "ingest_mail", {}, raw, SECRET)
    with pytest.raises(ValidationFailed):  # the sender alone is not enough
        call(mail_support, "ingest_mail", {}, reply_mail_to("support@kundencenter.example"), SECRET)
    with pytest.raises(ValidationFailed) as err:  # attachments are checked as on the web
        call(mail_support, "ingest_mail", {}, reply_mail_to(
            "support+0123456789abcdef0123456789abcdef@kundencenter.example",
            attachments=[("r.pdf", EXE, "application", "pdf")]), SECRET)
    assert "attachments.0" in err.value.fields
    assert len(call(mail_support, "get_request", MAX, number)["messages"]) == 1
    with pytest.raises(NotFound) as err:  # without a configured secret the webhook is off
        call(support, "ingest_mail", {}, raw, SECRET)
    assert "nicht eingerichtet" in err.value.message


def test_staff_open_a_request_on_the_phone_only_for_a_verified_caller(support, smtp_server):
    call_in = {"customer_id": 100001, "caller_name": "Petra Partner", "phone_password": "Blauer-Elefant-42",
               "subject": "Domain-Umzug", "message": "Bitte example.de zu uns umziehen.", "category": "domain"}
    for wrong, fields in (({"phone_password": "falsch"}, {"phone_password"}),
                          ({"caller_name": "Mallory Fremd"}, {"caller_name"}),
                          ({"customer_id": 100002}, {"caller_name", "phone_password"})):
        with pytest.raises(Forbidden) as err:
            call(support, "staff_open_request", AGENT, dict(call_in, **wrong))
        assert set(err.value.details["fields"]) == fields
    assert call(support, "staff_list_requests", AGENT)["total"] == 0

    view = call(support, "staff_open_request", AGENT, call_in)
    assert view["author_name"] == "Petra Partner" and view["author_kind"] == "contact"
    assert view["messages"][0]["via"] == "phone" and view["category"] == "domain"
    assert [(c["caller_name"], c["verified"]) for c in view["calls"]] == [("Petra Partner", True)]
    assert "Blauer-Elefant" not in str(view)
    [mail] = smtp_server.wait(1, to="max@kunde.example")
    assert view["number"] in mail["Subject"] and "petra@agentur.example" in mail["To"]
    with pytest.raises(Unauthenticated):
        call(support, "staff_open_request", MAX, call_in)


def test_demo_seed_is_idempotent_and_mails_nobody(support, support_config, smtp_server, capture_events):
    from kc_common.db import StandaloneDatabase
    from kc_support import demo
    events = capture_events("support")
    db = StandaloneDatabase(metadata, support_config["DATABASE_URL"], "support")
    demo.seed(db, support_config)
    demo.seed(db, support_config)
    db.engine.dispose()
    page = call(support, "list_requests", MAX)
    assert page["total"] == 1 and page["items"][0]["state"] == "answered"
    request = call(support, "get_request", MAX, page["items"][0]["number"])
    assert [m["kind"] for m in request["messages"]] == ["customer", "staff"]
    assert events.drain(support_config["DATABASE_URL"]) == [] and smtp_server.messages() == []

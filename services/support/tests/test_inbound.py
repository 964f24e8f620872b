"""Parsing replies by e-mail (no bus): the token decides, never the sender."""
from email.message import EmailMessage

import pytest

from kc_common.errors import ValidationFailed
from kc_support.domain import new_reply_token, reply_address, token_from_address
from kc_support.inbound import parse_mail, strip_quote

from .files import PNG

BASE = "support@kundencenter.example"
TOKEN = "0123456789abcdef0123456789abcdef"


def mail(to=None, body="Danke, jetzt geht es.\n\nAm 26.11.2026 schrieb KundenCenter:\n> alte Mail\n",
         html=None, attachments=(), **headers):
    msg = EmailMessage()
    msg["From"] = "Max Mustermann <max@kunde.example>"
    msg["To"] = to or f"KundenCenter <support+{TOKEN}@kundencenter.example>"
    msg["Subject"] = "Re: [SR-000001] Antwort auf Ihre Supportanfrage: Shop langsam"
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for name, data, maintype, subtype in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def test_reply_address_round_trip_and_only_ours():
    token = new_reply_token()
    address = reply_address(BASE, token)
    assert address == f"support+{token}@kundencenter.example"
    assert token_from_address(BASE, address.upper()) == token
    assert token_from_address(BASE, f"support+{token}@evil.example") is None
    assert token_from_address(BASE, "support@kundencenter.example") is None
    assert token_from_address(BASE, "support+SR-000001@kundencenter.example") is None
    assert reply_address("", token) is None


def test_a_reply_is_parsed_with_its_new_text_and_attachments():
    parsed = parse_mail(mail(attachments=[("bild.png", PNG, "image", "png")]), BASE)
    assert parsed["token"] == TOKEN and parsed["author_name"] == "Max Mustermann"
    assert parsed["body"] == "Danke, jetzt geht es." and not parsed["auto_reply"]
    assert [f["filename"] for f in parsed["files"]] == ["bild.png"]


def test_the_token_may_come_via_cc_or_delivered_to():
    parsed = parse_mail(mail(to="someone@else.example", Delivered_To=f"support+{TOKEN}@kundencenter.example"),
                        BASE)
    assert parsed["token"] == TOKEN


@pytest.mark.parametrize("to", [
    "support@kundencenter.example",                     # the sender alone never identifies a request
    "support+SR-000001@kundencenter.example",           # nor the (guessable) number
    f"support+{TOKEN}@fremd.example",
])
def test_without_a_valid_token_the_mail_is_refused(to):
    with pytest.raises(ValidationFailed) as err:
        parse_mail(mail(to=to), BASE)
    assert "to" in err.value.fields


def test_html_only_and_auto_replies():
    msg = EmailMessage()
    msg["From"] = "max@kunde.example"
    msg["To"] = f"support+{TOKEN}@kundencenter.example"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("<p>Ich bin im Urlaub.</p><p>Zur&uuml;ck am Montag</p>", subtype="html")
    parsed = parse_mail(msg.as_bytes(), BASE)
    assert parsed["auto_reply"] and "Ich bin im Urlaub." in parsed["body"] and "Zurück" in parsed["body"]
    assert parsed["author_name"] == "max@kunde.example"


def test_quote_stripping():
    assert strip_quote("Neu\r\n> alt\r\nauch neu\r\n-----Original Message-----\r\nalt") == "Neu\nauch neu"
    assert strip_quote("Hallo\nOn Mon, 1 Jan 2026 Support wrote:\n> x") == "Hallo"

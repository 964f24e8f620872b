"""Replies by e-mail: parse an inbound message (RFC 5322) into a reply to a request.

The mail provider (or the MTA) posts each message for ``support+<token>@…`` to
``POST /api/v1/support/inbound-mail`` (raw MIME body, shared secret header).
The request is found by the secret token in the address the customer wrote to
(the Reply-To of our mails) — never by the sender or the request number alone.

Pure functions; the service does the rest (token lookup, attachment checks).
"""
import base64
import re
from email import message_from_bytes, policy
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from kc_common.errors import ValidationFailed
from kc_support.domain import token_from_address

ADDRESS_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
_REPLY_HEADER = re.compile(r"^(Am .+ schrieb .+:|On .+ wrote:|-{2,} ?(Original Message|Ursprüngliche Nachricht)"
                           r" ?-{2,}|Von: .+|From: .+)$", re.IGNORECASE)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")


def html_to_text(html):
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts)


def strip_quote(text):
    """The new part of a reply: up to the quoted mail (``> …`` lines or a reply header)."""
    kept = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _REPLY_HEADER.match(line.strip()):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def is_auto_reply(msg):
    """Out-of-office and other machine mail: never added to a thread (no mail loops)."""
    auto = (msg.get("Auto-Submitted") or "no").strip().lower()
    precedence = (msg.get("Precedence") or "").strip().lower()
    return auto != "no" or precedence in ("bulk", "auto_reply", "junk", "list") \
        or bool(msg.get("X-Autoreply") or msg.get("X-Autorespond"))


def parse_mail(raw, reply_base):
    """``raw`` bytes -> {token, author_name, author_address, body, files, auto_reply}.

    Raises :class:`ValidationFailed` for a message without a reply token or text.
    """
    msg = message_from_bytes(raw, policy=policy.default)
    token = None
    for header in ADDRESS_HEADERS:
        for _, address in getaddresses(msg.get_all(header, [])):
            token = token_from_address(reply_base, address)
            if token:
                break
        if token:
            break
    if token is None:
        raise ValidationFailed("Die E-Mail ist an keine Antwortadresse einer Supportanfrage gerichtet.",
                               fields={"to": ["Keine gültige Antwortadresse."]})
    name, address = parseaddr(str(msg.get("From") or ""))
    part = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if part is not None:
        text = part.get_content()
        if part.get_content_subtype() == "html":
            text = html_to_text(text)
    body = strip_quote(text)
    files = [{"field": "attachments", "filename": a.get_filename() or "",
              "content_type": a.get_content_type(),
              "content_b64": base64.b64encode(a.get_payload(decode=True) or b"").decode("ascii")}
             for a in msg.iter_attachments()]
    if not body and not files:
        raise ValidationFailed("Die E-Mail enthält keinen Text.", fields={"body": ["Kein Text."]})
    author = re.sub(r"[\x00-\x1f\x7f]+", " ", name or address or "E-Mail").strip()[:200] or "E-Mail"
    return {"token": token, "author_name": author, "author_address": address,
            "body": body.replace("\x00", "") or "(ohne Text, siehe Anhang)", "files": files,
            "auto_reply": is_auto_reply(msg)}

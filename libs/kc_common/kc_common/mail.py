"""Real mail through SMTP; configuration from the service's config.

Settings (nameko config, from the environment): ``SMTP_HOST`` (default
127.0.0.1), ``SMTP_PORT`` (8025: the local sink of ``make run``), ``SMTP_TLS``
(``none`` | ``starttls`` | ``ssl``), ``SMTP_USER``, ``SMTP_PASSWORD``,
``MAIL_FROM``.

Send mail after the change that causes it has committed, never inside the
request's transaction: emit an event through the outbox and send from an event
handler (retried, dead-lettered, idempotent with ``db.handle_once``).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from nameko.extensions import DependencyProvider

from kc_common.txguard import assert_no_transaction

DEFAULT_FROM = "KundenCenter <kundencenter@kundencenter.example>"


def message_id_for(event_id: str, source: str) -> str:
    """A Message-ID stable per event: a mail sent again after a crash (at least once) is
    recognisably the same message for the receiving side."""
    return f"<{event_id}.{source}@kundencenter.example>"


def build_message(*, sender: str, to: str | Sequence[str], subject: str, body: str,
                  reply_to: str | None = None, attachments: Sequence[tuple[str, str, bytes]] = (),
                  headers: dict[str, Any] | None = None, message_id: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id or make_msgid(domain="kundencenter.example")
    if reply_to:
        msg["Reply-To"] = reply_to
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=filename)
    return msg


def send(config: Mapping[str, Any], msg: EmailMessage, timeout: float = 10) -> None:
    assert_no_transaction("SMTP")
    host = config.get("SMTP_HOST") or "127.0.0.1"
    port = int(config.get("SMTP_PORT") or 8025)
    tls = (config.get("SMTP_TLS") or "none").lower()
    client: smtplib.SMTP
    if tls == "ssl":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if tls == "starttls":
            client.starttls(context=ssl.create_default_context())
        if config.get("SMTP_USER"):
            client.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
        client.send_message(msg)


class Mailer(DependencyProvider):
    """``self.mailer.send(to=..., subject=..., body=..., attachments=[(name, type, bytes)])``."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        config = self.container.config

        class _Mailer:
            def send(self, **kwargs: Any) -> str:
                msg = build_message(sender=config.get("MAIL_FROM") or DEFAULT_FROM, **kwargs)
                send(config, msg)
                return msg["Message-ID"]
        return _Mailer()

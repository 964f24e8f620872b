"""Mail goes through a real SMTP server and arrives whole."""
from kc_common.mail import build_message, send


def test_mail_with_attachment_arrives(smtp_server):
    msg = build_message(sender="kc@kundencenter.example", to="kunde@example.org",
                        subject="Ihre Rechnung 1000001", body="Guten Tag,\nanbei Ihre Rechnung.",
                        attachments=[("RE-1000001.pdf", "application/pdf", b"%PDF-1.7 test")])
    send(smtp_server.config, msg)
    received = smtp_server.wait(1, to="kunde@example.org")[0]
    assert received["Subject"] == "Ihre Rechnung 1000001"
    assert "anbei Ihre Rechnung" in received.get_body(("plain",)).get_content()
    attachment = next(received.iter_attachments())
    assert attachment.get_filename() == "RE-1000001.pdf" and attachment.get_content() == b"%PDF-1.7 test"

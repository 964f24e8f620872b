"""The texts of support's mails (German; times Europe/Berlin). Pure functions."""
from kc_common.clock import as_berlin
from kc_common.seller import mail_signature, seller_from_config
from kc_support.schemas import CATEGORIES, STATES

# with the provider's statutory lines (§ 35a GmbHG: a mail to a customer is a business letter)
SIGNATURE = mail_signature(seller_from_config(), team="Ihr KundenCenter Support-Team").rstrip("\n")


def berlin(instant):
    return as_berlin(instant).strftime("%d.%m.%Y %H:%M Uhr")


def reply_hint(can_reply_by_mail):
    if can_reply_by_mail:
        return ("Sie können direkt auf diese E-Mail antworten (bitte die Antwortadresse nicht "
                "ändern) oder im KundenCenter unter „Supportanfrage erstellen“ › Ihre Anfragen.")
    return "Antworten Sie bitte im KundenCenter unter „Supportanfrage erstellen“ › Ihre Anfragen."


def subject_line(request, text):
    return f"[{request.number}] {text}: {request.subject}"


def opened(request, message, files, can_reply_by_mail=True):
    names = "\n".join(f"  - {f.filename} ({f.size} Bytes)" for f in files) or "  (keine)"
    body = (f"Guten Tag {request.author_name},\n\n"
            f"vielen Dank für Ihre Supportanfrage. Wir haben sie am {berlin(request.created_at)} "
            f"unter der Nummer {request.number} erfasst und melden uns so bald wie möglich.\n\n"
            f"Betreff: {request.subject}\n"
            f"Kategorie: {CATEGORIES[request.category]}\n"
            f"Anhänge:\n{names}\n\n"
            f"Ihre Anfrage:\n{_quote(message.body)}\n\n"
            f"{reply_hint(can_reply_by_mail)}\n\n{SIGNATURE}\n")
    return subject_line(request, "Ihre Supportanfrage ist eingegangen"), body


def staff_replied(request, message, files=(), can_reply_by_mail=True):
    after = {"closed": "Wir haben Ihre Anfrage damit geschlossen. Wenn Sie antworten, öffnen wir sie wieder.",
             "answered": "Bitte antworten Sie uns, wenn noch etwas offen ist.",
             "open": "Wir bearbeiten Ihre Anfrage weiter."}[request.state]
    body = (f"Guten Tag {request.author_name},\n\n"
            f"zu Ihrer Supportanfrage {request.number} „{request.subject}“ haben wir geantwortet "
            f"({berlin(message.created_at)}):\n\n{message.body}\n\n{_files(files)}{after}\n\n"
            f"{reply_hint(can_reply_by_mail)}\n\n{SIGNATURE}\n")
    return subject_line(request, "Antwort auf Ihre Supportanfrage"), body


def state_changed(request, old_state, new_state, can_reply_by_mail=True):
    body = (f"Guten Tag {request.author_name},\n\n"
            f"der Status Ihrer Supportanfrage {request.number} „{request.subject}“ hat sich geändert: "
            f"{STATES[old_state]} → {STATES[new_state]}.\n\n"
            f"{reply_hint(can_reply_by_mail)}\n\n{SIGNATURE}\n")
    return subject_line(request, f"Status Ihrer Supportanfrage: {STATES[new_state]}"), body


def _files(files):
    if not files:
        return ""
    names = "\n".join(f"  - {f.filename}" for f in files)
    return f"Anhänge (im KundenCenter bei Ihrer Anfrage herunterladen):\n{names}\n\n"


def _quote(text):
    return "\n".join("> " + line for line in text.splitlines())

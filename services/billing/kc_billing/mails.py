"""The texts of billing's mails (German; amounts with Babel, de_DE). Pure functions."""
import datetime as dt
from decimal import Decimal

from kc_common.formats import money_de
from kc_common.seller import mail_signature


def invoice_subject(inv):
    if inv.kind == "credit_note":
        return f"Ihre Gutschrift {inv.number}" + (
            f" (Rechnungskorrektur zu Rechnung {inv.preceding_number})" if inv.preceding_number else "")
    return f"Ihre Rechnung {inv.number}"


def invoice_text(inv, settings, mandate_reference=None):
    """The mail with the PDF; a credit note is worded as one; for SEPA the pre-notification
    (amount, due date, mandate reference, creditor id). Signed with the seller's statutory
    details (the invoice's own seller snapshot, else the configured one)."""
    seller = inv.seller or settings.seller
    if inv.kind == "credit_note":
        body = (f"Guten Tag,\n\nanbei erhalten Sie Ihre Gutschrift {inv.number} über "
                f"{money_de(-inv.gross)}"
                + (f" (Rechnungskorrektur zu Rechnung {inv.preceding_number})" if inv.preceding_number else "")
                + ".\nWir verrechnen den Betrag mit offenen Rechnungen; ein verbleibendes Guthaben "
                  "erstatten wir Ihnen auf Wunsch.\n")
    else:
        body = (f"Guten Tag,\n\nanbei erhalten Sie Ihre Rechnung {inv.number} über "
                f"{money_de(inv.gross)}.\n"
                + (f"Bitte überweisen Sie den Betrag bis zum {inv.due_date:%d.%m.%Y} unter Angabe "
                   f"von {inv.payment_reference}.\n" if inv.payment_method == "transfer" else ""))
        if inv.payment_method == "sepa" and mandate_reference:
            body += (f"Den Betrag von {money_de(inv.gross)} ziehen wir am {inv.due_date:%d.%m.%Y} "
                     f"per SEPA-Lastschrift von Ihrem Konto ein (Mandatsreferenz "
                     f"{mandate_reference}, Gläubiger-ID {settings.sepa_creditor_id}).\n")
    return body + "\n" + mail_signature(seller)


def invoice_filename(inv, document):
    return document.get("filename") or f"Rechnung-{inv.number}.pdf"


def dunning_subject(data):
    return f"Zahlungserinnerung zu Rechnung {data['number']}"


def dunning_text(data, settings):
    due = dt.date.fromisoformat(data["due_date"])
    seller = settings.seller
    return (f"Guten Tag,\n\nzu Rechnung {data['number']} (fällig am {due:%d.%m.%Y}) ist noch "
            f"ein Betrag von {money_de(data['open_amount'])} offen ({data['level']}. Erinnerung).\n"
            f"Bitte überweisen Sie ihn auf {seller['iban']} ({seller['bank']}) mit dem "
            f"Verwendungszweck {data['payment_reference']} oder zahlen Sie im KundenCenter.\n\n"
            + mail_signature(seller))


def debit_returned_subject(data):
    return f"Rücklastschrift zu Rechnung {data['invoice_number']}"


def debit_returned_text(data, settings):
    """A Rücklastschrift: the amount, the bank's reason, the fee passed on, how to pay."""
    seller = settings.seller
    fee = data["fee"]
    return (f"Guten Tag,\n\ndie Lastschrift zu Rechnung {data['invoice_number']} über "
            f"{money_de(data['amount'])} (Mandatsreferenz {data['mandate_reference']}) "
            f"wurde von Ihrer Bank zurückgegeben.\nGrund: {data['reason']}"
            + (f" ({data['reason_code']})" if data.get("reason_code") else "") + ".\n"
            + (f"Für die Rücklastschrift berechnet uns die Bank {money_de(fee)}, die wir Ihrem "
               "Kundenkonto belastet haben.\n" if Decimal(str(fee)) > 0 else "")
            + f"\nBitte überweisen Sie den offenen Betrag auf {seller['iban']} ({seller['bank']}) "
            f"mit dem Verwendungszweck KC{data['customer_id']}-{data['invoice_number']} oder zahlen "
            "Sie im KundenCenter. Prüfen Sie bitte auch Ihre Bankverbindung in den "
            "Zahlungsdetails.\n\nMit freundlichen Grüßen\nIhr KundenCenter-Team\n")

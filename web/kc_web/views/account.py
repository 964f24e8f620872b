"""Meine Buchhaltung: Kundenkonto (balance, bookings, invoice PDFs) and Zahlung vornehmen."""
from decimal import Decimal

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from segno import helpers

from kc_web.api import ApiError
from kc_web.formats import money, to_decimal
from kc_web.views import api, get, new_key, page_args, parallel

bp = Blueprint("account", __name__)

TYPES = {"RE": "Rechnung", "GU": "Gutschrift", "ZAHLUNG": "Zahlung", "KONTOAUSGLEICH": "Kontoausgleich",
         "ERSTATTUNG": "Erstattung", "RUECKLASTSCHRIFT": "Rücklastschrift", "GEBUEHR": "Gebühr"}
METHODS = {"U": "Überweisung", "K": "Kreditkarte", "S": "Sofortüberweisung", "L": "Lastschrift"}
PAY_METHODS = {"card": "Kreditkarte (VISA, Mastercard)", "instant": "Sofortüberweisung"}


def balance_text(balance):
    """``Ihr aktueller Kontostand: 0,00 € Guthaben`` / ``-4,00 € offener Betrag``."""
    amount = to_decimal(balance) or Decimal(0)
    return money(amount) + (" Guthaben" if amount >= 0 else " offener Betrag"), amount


@bp.get("/konto")
def index():
    page, per_page, _ = page_args(request)
    params = {"page": page, "per_page": per_page}
    kind = request.args.get("typ")
    if kind in TYPES:
        params["type"] = kind
    account = get("/api/v1/me/account", params=params)
    text, amount = balance_text(account["balance"])
    bookings = account["bookings"]
    return render_template("account/index.html", title="Kundenkonto", balance_text=text, balance=amount,
                           bookings=bookings["items"], total=bookings["total"], page=bookings["page"],
                           per_page=bookings["per_page"], types=TYPES, methods=METHODS, kind=kind)


@bp.get("/konto/rechnungen/<int:number>.pdf")
def invoice_pdf(number):
    file = api("GET", f"/api/v1/me/documents/invoices/{number}", binary=True)
    return Response(file.content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="Rechnung_{number}.pdf"'})


def girocode(details):
    """The GiroCode (EPC QR) for the transfer, as inline SVG."""
    amount = to_decimal(details["amount"]) or Decimal(0)
    if amount <= 0:
        return None  # nothing to transfer
    qr = helpers.make_epc_qr(name=details["account_holder"][:70], iban=details["iban"], amount=amount,
                             text=details["reference"], bic=details["bic"])
    svg = qr.svg_inline(scale=4, dark="#111", light="#fff")
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="GiroCode für die Überweisung" ', 1))


@bp.route("/zahlung", methods=["GET", "POST"])
def pay():
    error = None
    if request.method == "POST":
        method = request.form.get("method")
        if method not in PAY_METHODS:
            error = "Bitte wählen Sie eine Zahlungsart."
        else:
            # The PSP sends the customer back to this page (billing allows only its origins).
            body = {"method": method, "return_url": url_for("account.pay", _external=True)}
            amount = (request.form.get("amount") or "").strip().replace(".", "").replace(",", ".")
            if amount:
                body["amount"] = amount
            try:
                payment = api("POST", "/api/v1/me/payments", json=body,
                              headers={"Idempotency-Key": request.form.get("idempotency_key") or new_key()})
            except ApiError as exc:
                if exc.status not in (400, 422):
                    raise
                error = exc.message + "".join(" " + t for t in exc.field_errors().values())
            else:
                if payment.get("redirect_url"):
                    return render_template("redirect.html", title="Weiter zur Zahlung", url=payment["redirect_url"],
                                           text=f"Sie zahlen {money(payment['amount'])} per {PAY_METHODS[method]}. "
                                                "Dazu geht es weiter zu unserem Zahlungsdienstleister.",
                                           button="Weiter zum Zahlungsdienstleister")
                return redirect(url_for("account.pay", payment_id=payment["payment_id"]))
    payment = None
    payment_id = request.args.get("payment_id")
    if payment_id:
        try:
            payment = get(f"/api/v1/me/payments/{payment_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            flash("Diese Zahlung gibt es nicht.", "error")
    account, details = parallel(lambda: get("/api/v1/me/account", params={"per_page": 10}),
                                lambda: get("/api/v1/me/payments/transfer-details"))
    text, amount = balance_text(account["balance"])
    return render_template("account/pay.html", title="Zahlung vornehmen", balance_text=text, balance=amount,
                           details=details, open_amount=to_decimal(details["amount"]) or Decimal(0),
                           payment=payment, methods=PAY_METHODS, error=error, idempotency_key=new_key(),
                           girocode=girocode(details), refresh=payment is not None and payment["status"] in
                           ("created", "pending")), (400 if error else 200)




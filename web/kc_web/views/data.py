"""Meine Daten: Adressdaten, Passwörter, Zahlungsdetails, Ansprechpartner, Mitteilungen,
Datenschutz, IP-Whitelist, Anmeldung & Sicherheit (sessions, logins, two-factor login), and the
DS-GVO pages Daten exportieren and Konto schließen."""
import time

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup
from segno import make_qr

from kc_web.api import ApiError
from kc_web.views import api, get, parallel

bp = Blueprint("data", __name__)

ADDRESS_FIELDS = ["last_name", "first_name", "email", "street", "zip", "city", "country", "phone", "fax",
                  "mobile", "vat_id"]
COUNTRIES = [("DE", "Deutschland"), ("AT", "Österreich"), ("CH", "Schweiz"), ("NL", "Niederlande"),
             ("BE", "Belgien"), ("LU", "Luxemburg"), ("FR", "Frankreich"), ("IT", "Italien"), ("ES", "Spanien"),
             ("PL", "Polen"), ("DK", "Dänemark"), ("CZ", "Tschechien"), ("GB", "Vereinigtes Königreich")]
PHONE_FRESH_MINUTES = 10


def _errors(exc):
    return exc.field_errors() if exc.status in (400, 422) else {}


# --- Adressdaten ---------------------------------------------------------------------------
@bp.route("/daten/adresse", methods=["GET", "POST"])
def address():
    errors, message = {}, None
    if request.method == "POST":
        values = {f: (request.form.get(f) or "").strip() for f in ADDRESS_FIELDS}
        body = {k: (v or None) for k, v in values.items()}
        body["company"] = request.form.get("company_current") or None
        try:
            body["version"] = int(request.form.get("version", ""))
        except ValueError:
            pass
        try:
            me = api("PUT", "/api/v1/me/address", json=body)
        except ApiError as exc:
            if exc.status not in (400, 422, 409):
                raise
            message, errors = exc.message, _errors(exc)
            if exc.status == 409:
                message += " Bitte laden Sie die Seite neu; Ihre Eingaben sehen Sie unten."
            me = dict(values, customer_id=session["customer"]["id"], company=body["company"] or "",
                      version=request.form.get("version", ""))
        else:
            flash("Ihre Adressdaten sind gespeichert.", "success")
            customer = dict(session.get("customer") or {})
            customer["name"] = f"{me.get('first_name', '')} {me.get('last_name', '')}".strip()
            session["customer"] = customer
            return redirect(url_for("data.address"))
    else:
        me = get("/api/v1/me")
    return render_template("data/address.html", title="Adressdaten verwalten", me=me, errors=errors,
                           message=message, countries=COUNTRIES), (400 if message else 200)


# --- Passwörter ----------------------------------------------------------------------------
def _passwords_page(status=200, **context):
    phone = context.pop("phone", None) or get("/api/v1/me/phone-password")
    fresh = time.time() - session.get("login_at", 0) < PHONE_FRESH_MINUTES * 60
    context.setdefault("errors", {})
    return render_template("data/passwords.html", title="Passwörter verwalten", phone=phone, fresh=fresh,
                           **context), status


@bp.get("/daten/passwoerter")
def passwords():
    return _passwords_page()


@bp.post("/daten/passwoerter/service")
def service_password():
    body = {k: request.form.get(k, "") for k in ("current_password", "new_password", "new_password_repeat")}
    try:
        api("PUT", "/api/v1/me/password", json=body)
    except ApiError as exc:
        if exc.status not in (400, 422, 429):
            raise
        return _passwords_page(400, service_message=exc.message, errors=_errors(exc))
    flash("Ihr Service-Passwort ist geändert. Alle anderen Sitzungen wurden beendet; Sie erhalten eine "
          "Bestätigung per E-Mail.", "success")
    return redirect(url_for("data.passwords"))


@bp.post("/daten/passwoerter/telefon")
def phone_password():
    body = {k: request.form.get(k, "") for k in ("phone_password", "phone_password_repeat")}
    try:
        api("PUT", "/api/v1/me/phone-password", json=body)
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise
        return _passwords_page(400, phone_message=exc.message, errors=_errors(exc))
    flash("Ihr Telefon-Passwort ist gespeichert.", "success")
    return redirect(url_for("data.passwords"))


@bp.post("/daten/passwoerter/telefon/anzeigen")
def reveal_phone_password():
    password = request.form.get("password") or None
    try:
        result = api("POST", "/api/v1/me/phone-password/reveal", json={"password": password} if password else {})
    except ApiError as exc:
        if exc.status not in (400, 422, 403, 404, 429):
            raise
        return _passwords_page(400 if exc.status in (400, 422) else exc.status, reveal_message=exc.message,
                               errors={("reveal_password" if k == "password" else k): v
                                       for k, v in _errors(exc).items()}, ask_password=True)
    return _passwords_page(revealed=result["phone_password"])


# --- Zahlungsdetails -----------------------------------------------------------------------
@bp.route("/daten/zahlungsdetails", methods=["GET", "POST"])
def payment_details():
    errors, message = {}, None
    details = get("/api/v1/me/payment-details")
    if request.method == "POST":
        form = request.form
        body = {"by_post": form.get("by_post") == "ja", "with_contact_person": form.get("with_contact_person") == "ja",
                "invoice_email": (form.get("invoice_email") or "").strip() or None,
                "method": form.get("method", ""),
                "einvoice_profile": form.get("einvoice_profile") or details.get("einvoice_profile") or "en16931"}
        if body["einvoice_profile"] == "xrechnung":
            body["leitweg_id"] = (form.get("leitweg_id") or "").strip() or None
        if body["method"] == "sepa":
            iban = (form.get("iban") or "").replace(" ", "").upper()
            if iban:
                body["iban"] = iban
            body["account_holder"] = (form.get("account_holder") or "").strip() or None
            body["sepa_mandate_accepted"] = bool(form.get("sepa_mandate_accepted"))
        try:
            api("PUT", "/api/v1/me/payment-details", json=body)
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            message, errors = exc.message, _errors(exc)
            details = dict(details, **{k: v for k, v in body.items() if k != "iban"},
                           iban_input=form.get("iban", ""))
        else:
            flash("Ihre Zahlungsdetails sind gespeichert. Sie gelten ab der nächsten Rechnung.", "success")
            return redirect(url_for("data.payment_details"))
    return render_template("data/payment_details.html", title="Zahlungsdetails verwalten", details=details,
                           errors=errors, message=message), (400 if message else 200)


# --- Ansprechpartner -----------------------------------------------------------------------
def _contact_body(form):
    return {"name": (form.get("name") or "").strip(), "email": (form.get("email") or "").strip() or None,
            "phone": (form.get("phone") or "").strip() or None, "role": (form.get("role") or "").strip() or None,
            "relation": form.get("relation") if form.get("relation") in ("internal", "external") else "external",
            "may_support": bool(form.get("may_support")), "may_billing": bool(form.get("may_billing"))}


@bp.route("/daten/ansprechpartner", methods=["GET", "POST"])
def contacts():
    errors, message, values = {}, None, {"relation": "external"}
    if request.method == "POST":
        values = _contact_body(request.form)
        try:
            api("POST", "/api/v1/me/contacts", json=values)
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            message, errors = exc.message, _errors(exc)
        else:
            flash(f"{values['name']} ist als Ansprechpartner eingetragen.", "success")
            return redirect(url_for("data.contacts"))
    items = get("/api/v1/me/contacts")["items"]
    return render_template("data/contacts.html", title="Ansprechpartner", items=items, values=values,
                           errors=errors, message=message), (400 if message else 200)


@bp.route("/daten/ansprechpartner/<contact_id>", methods=["GET", "POST"])
def contact_edit(contact_id):
    errors, message = {}, None
    if request.method == "POST":
        if request.form.get("action") == "delete":
            api("DELETE", f"/api/v1/me/contacts/{contact_id}")
            flash("Der Ansprechpartner ist entfernt.", "success")
            return redirect(url_for("data.contacts"))
        values = _contact_body(request.form)
        try:
            api("PUT", f"/api/v1/me/contacts/{contact_id}", json=values)
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            message, errors = exc.message, _errors(exc)
            contact = dict(values, id=contact_id)
        else:
            flash("Der Ansprechpartner ist gespeichert.", "success")
            return redirect(url_for("data.contacts"))
    else:
        contact = next((c for c in get("/api/v1/me/contacts")["items"] if c["id"] == contact_id), None)
        if contact is None:
            return render_template("error.html", title="Nicht gefunden",
                                   message="Diesen Ansprechpartner gibt es nicht."), 404
    return render_template("data/contact_edit.html", title="Ansprechpartner bearbeiten", contact=contact,
                           errors=errors, message=message), (400 if message else 200)


# --- Mitteilungen --------------------------------------------------------------------------
@bp.route("/daten/mitteilungen", methods=["GET", "POST"])
def notifications():
    message = None
    items = get("/api/v1/me/notifications")["items"]
    if request.method == "POST":
        chosen = set(request.form.getlist("topics"))
        body = {item["topic"]: (item["topic"] in chosen) for item in items if not item["mandatory"]}
        try:
            api("PUT", "/api/v1/me/notifications", json=body)
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            message = exc.message
        else:
            flash("Ihre Einstellungen zu Mitteilungen sind gespeichert.", "success")
            return redirect(url_for("data.notifications"))
    return render_template("data/notifications.html", title="Mitteilungen", items=items, message=message)


# --- Datenschutz (AV) ----------------------------------------------------------------------
@bp.route("/daten/datenschutz", methods=["GET", "POST"])
def privacy():
    errors, message, values = {}, None, {}
    if request.method == "POST":
        values = {"signer_name": (request.form.get("signer_name") or "").strip(),
                  "signer_position": (request.form.get("signer_position") or "").strip(),
                  "accept": bool(request.form.get("accept"))}
        try:
            body = dict(values, version=int(request.form.get("version", "0")))
            api("POST", "/api/v1/me/av-agreement/signatures", json=body)
        except (ApiError, ValueError) as exc:
            if isinstance(exc, ApiError) and exc.status not in (400, 422, 409):
                raise
            message = getattr(exc, "message", "Bitte laden Sie die Seite neu.")
            errors = _errors(exc) if isinstance(exc, ApiError) else {}
        else:
            flash("Vielen Dank: die Vereinbarung zur Auftragsverarbeitung ist abgeschlossen. Das unterschriebene "
                  "PDF finden Sie gleich unter Meine Dokumente.", "success")
            return redirect(url_for("data.privacy"))
    # The signed PDF: documents stores it as kind av_agreement with ref = the signature's id.
    av, documents = parallel(lambda: get("/api/v1/me/av-agreement"),
                             lambda: get("/api/v1/me/documents",
                                         params={"kind": "av_agreement", "per_page": 100}))
    by_ref = {d["ref"]: d for d in documents["items"]}
    pdf_of = {s["id"]: by_ref[s["id"]] for s in av["signatures"] if s["id"] in by_ref}
    return render_template("data/privacy.html", title="Datenschutz", av=av, pdf_of=pdf_of, errors=errors,
                           message=message, values=values), (400 if message else 200)


# --- IP-Whitelist --------------------------------------------------------------------------
@bp.route("/daten/ip-whitelist", methods=["GET", "POST"])
def whitelist():
    errors, message, confirm, text = {}, None, False, None
    if request.method == "POST":
        text = request.form.get("entries", "")
        entries = [e.strip() for e in text.replace(",", "\n").splitlines() if e.strip()]
        body = {"entries": entries, "confirm_lockout": bool(request.form.get("confirm_lockout"))}
        try:
            api("PUT", "/api/v1/me/ip-whitelist", json=body)
        except ApiError as exc:
            if exc.status not in (400, 422, 409):
                raise
            message = exc.message
            if exc.status == 409 and exc.reason == "confirmation_required":
                confirm = True
                message = (f"Ihre aktuelle IP-Adresse ({exc.details.get('client_ip', 'unbekannt')}) steht nicht "
                           "in der Liste. Nach dem Speichern könnten Sie sich von hier aus nicht mehr anmelden "
                           "und diese Sitzung endet. Bitte bestätigen Sie das ausdrücklich.")
            errors = {("entries" if k.startswith("entries") else k): v for k, v in _errors(exc).items()}
        else:
            flash("Die IP-Whitelist ist gespeichert." if entries else
                  "Die IP-Whitelist ist leer: Sie können sich von jeder Adresse aus anmelden.", "success")
            return redirect(url_for("data.whitelist"))
    current = get("/api/v1/me/ip-whitelist")
    if text is None:
        text = "\n".join(current["entries"])
    return render_template("data/whitelist.html", title="IP-Whitelist", current=current, text=text,
                           errors=errors, message=message, confirm=confirm), (409 if confirm else 400 if message else 200)


# --- Daten exportieren (DS-GVO Art. 15/20) --------------------------------------------------
SERVICE_NAMES = {"identity": "Kundendaten", "catalog": "Produkte und Verträge", "billing": "Buchhaltung",
                 "dns": "DNS", "documents": "Dokumente", "support": "Supportanfragen"}


@bp.route("/daten/export", methods=["GET", "POST"])
def export():
    message = None
    if request.method == "POST":
        try:
            api("POST", "/api/v1/me/data-export", json={})
        except ApiError as exc:
            if exc.status not in (400, 422, 409, 429):
                raise
            message = exc.message
        else:
            flash("Ihr Datenexport ist beantragt. Sobald das Archiv fertig ist, finden Sie es hier und unter "
                  "Meine Dokumente; wir schicken Ihnen außerdem eine E-Mail.", "success")
            return redirect(url_for("data.export"))
    try:
        current = get("/api/v1/me/data-export")
    except ApiError as exc:
        if exc.status != 404:
            raise
        current = None
    return render_template("data/export.html", title="Daten exportieren", current=current, message=message,
                           service_names=SERVICE_NAMES), (400 if message else 200)


# --- Konto schließen -----------------------------------------------------------------------
CLOSURE_STATES = {"none": "nicht beantragt", "requested": "beantragt", "erased": "abgeschlossen"}


@bp.route("/daten/konto-schliessen", methods=["GET", "POST"])
def closure():
    errors, message, confirmed = {}, None, False
    if request.method == "POST":
        confirmed = bool(request.form.get("confirm"))
        if not confirmed:
            message = "Bitte bestätigen Sie, dass Sie Ihr Konto schließen möchten."
            errors = {"confirm": "Bitte bestätigen Sie die Schließung."}
            state = get("/api/v1/me/closure")
        else:
            try:
                state = api("POST", "/api/v1/me/closure", json={"password": request.form.get("password", "")})
            except ApiError as exc:
                if exc.status not in (400, 422, 429):
                    raise
                message, errors = exc.message, _errors(exc)
                state = get("/api/v1/me/closure")
            else:
                # Shown right here, not after a redirect: with no contract and a settled balance the
                # erasure may follow within moments and end this session.
                flash("Die Schließung Ihres Kontos ist beantragt.", "success")
    else:
        state = get("/api/v1/me/closure")
    return render_template("data/closure.html", title="Konto schließen", state=state, errors=errors,
                           message=message, confirmed=confirmed, state_names=CLOSURE_STATES), \
        (400 if message else 200)


# --- Anmeldung & Sicherheit ----------------------------------------------------------------
def qr_svg(text, label):
    svg = make_qr(text, error="m").svg_inline(scale=4, dark="#111", light="#fff")
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1))


def _security_page(status=200, **context):
    sessions, logins, two_factor = parallel(lambda: get("/api/v1/me/sessions"),
                                            lambda: get("/api/v1/me/logins", params={"per_page": 10}),
                                            lambda: get("/api/v1/me/two-factor"))
    context.setdefault("errors", {})
    setup = session.get("totp_setup")
    if setup and not context.get("recovery_codes"):
        context.setdefault("setup", setup)
        context.setdefault("qr", qr_svg(setup["uri"], "QR-Code für die Authenticator-App"))
    return render_template("data/security.html", title="Anmeldung & Sicherheit", sessions=sessions["items"],
                           logins=logins["items"], two_factor=two_factor, **context), status


@bp.get("/daten/sicherheit")
def security():
    return _security_page()


@bp.post("/daten/sicherheit/sitzungen/<session_id>/beenden")
def end_session(session_id):
    api("DELETE", f"/api/v1/me/sessions/{session_id}")
    flash("Die Sitzung ist beendet.", "success")
    return redirect(url_for("data.security"))


@bp.post("/daten/sicherheit/zwei-faktor/einrichten")
def totp_setup():
    try:
        result = api("POST", "/api/v1/me/two-factor/setup", json={"password": request.form.get("password", "")})
    except ApiError as exc:
        if exc.status not in (400, 422, 409, 429):
            raise
        return _security_page(400, totp_message=exc.message, errors=_errors(exc))
    session["totp_setup"] = {"uri": result["otpauth_uri"], "secret": result["secret"]}
    return redirect(url_for("data.security") + "#zwei-faktor")


@bp.post("/daten/sicherheit/zwei-faktor/aktivieren")
def totp_enable():
    try:
        result = api("POST", "/api/v1/me/two-factor/enable", json={"code": (request.form.get("code") or "").strip()})
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise
        return _security_page(400, totp_message=exc.message,
                              errors={("totp_code" if k == "code" else k): v for k, v in _errors(exc).items()})
    session.pop("totp_setup", None)
    flash("Die Zwei-Faktor-Anmeldung ist eingeschaltet.", "success")
    return _security_page(recovery_codes=result["recovery_codes"])


@bp.post("/daten/sicherheit/zwei-faktor/abbrechen")
def totp_cancel():
    session.pop("totp_setup", None)
    return redirect(url_for("data.security"))


@bp.post("/daten/sicherheit/zwei-faktor/ausschalten")
def totp_disable():
    try:
        api("POST", "/api/v1/me/two-factor/disable", json={"password": request.form.get("password", "")})
    except ApiError as exc:
        if exc.status not in (400, 422, 429):
            raise
        return _security_page(400, totp_message=exc.message, errors=_errors(exc))
    flash("Die Zwei-Faktor-Anmeldung ist ausgeschaltet.", "success")
    return redirect(url_for("data.security"))


@bp.post("/daten/sicherheit/zwei-faktor/neue-codes")
def totp_codes():
    try:
        result = api("POST", "/api/v1/me/two-factor/recovery-codes", json={"password": request.form.get("password", "")})
    except ApiError as exc:
        if exc.status not in (400, 422, 429):
            raise
        return _security_page(400, totp_message=exc.message, errors=_errors(exc))
    return _security_page(recovery_codes=result["recovery_codes"])

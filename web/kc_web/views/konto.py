"""Konto (public pages): Registrieren, Passwort vergessen, neues Passwort per Link, E-Mail bestätigen.

The links in identity's mails open these pages; the token is confirmed with a POST from the page
(a mail scanner that follows the GET link uses nothing up).
"""
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from kc_web.api import ApiError
from kc_web.views.auth import login_error_text
from kc_web.views.data import COUNTRIES

bp = Blueprint("konto", __name__)

SIGNUP_FIELDS = ["customer_type", "company", "vat_id", "last_name", "first_name", "email", "street", "zip",
                 "city", "country", "phone", "fax", "mobile"]


def _call(method, path, **kwargs):
    return current_app.extensions["kc_api"].call(method, path, None, **kwargs)


def _message(exc):
    return login_error_text(exc) if exc.status == 429 else exc.message


@bp.route("/registrieren", methods=["GET", "POST"])
def register():
    terms = _call("GET", "/api/v1/signup/terms")
    values, errors, message = {"customer_type": "private", "country": "DE"}, {}, None
    if request.method == "POST":
        values = {f: (request.form.get(f) or "").strip() for f in SIGNUP_FIELDS}
        body = {k: (v or None) for k, v in values.items()}
        body["customer_type"] = values["customer_type"] or "private"
        body["country"] = values["country"] or "DE"
        body.update(password=request.form.get("password") or "",
                    password_repeat=request.form.get("password_repeat") or "",
                    accept_terms=request.form.get("accept_terms") == "1",
                    terms_version=request.form.get("terms_version") or "")
        try:
            result = _call("POST", "/api/v1/signup", json=body)
        except ApiError as exc:
            if exc.status not in (400, 422, 409, 429):
                raise
            message, errors = _message(exc), exc.field_errors()
            if exc.status == 409:
                terms = _call("GET", "/api/v1/signup/terms")
        else:
            return render_template("konto/done.html", title="Registrierung", message=result["message"])
    return render_template("konto/register.html", title="Registrieren", terms=terms, values=values,
                           errors=errors, message=message, countries=COUNTRIES), (400 if message else 200)


@bp.route("/passwort-vergessen", methods=["GET", "POST"])
def forgot():
    message, login_text = None, ""
    if request.method == "POST":
        login_text = (request.form.get("login") or "").strip()
        if not login_text:
            message = "Bitte geben Sie Ihre Kundennummer oder E-Mail-Adresse ein."
        else:
            try:
                result = _call("POST", "/api/v1/password-reset", json={"login": login_text})
            except ApiError as exc:
                if exc.status not in (400, 422, 429):
                    raise
                message = _message(exc)
            else:
                return render_template("konto/done.html", title="Passwort vergessen", message=result["message"])
    return render_template("konto/forgot.html", title="Passwort vergessen", message=message,
                           login=login_text), (400 if message else 200)


@bp.route("/passwort-neu", methods=["GET", "POST"])
def new_password():
    token = request.values.get("token") or ""
    message, errors = None, {}
    if request.method == "POST":
        try:
            _call("PUT", "/api/v1/password-reset", json={
                "token": token, "new_password": request.form.get("new_password") or "",
                "new_password_repeat": request.form.get("new_password_repeat") or ""})
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            message, errors = exc.message, exc.field_errors()
        else:
            flash("Ihr neues Service-Passwort ist gespeichert. Alle Sitzungen wurden beendet; "
                  "bitte melden Sie sich an.", "success")
            return redirect(url_for("auth.login"))
    return render_template("konto/new_password.html", title="Neues Passwort festlegen", token=token,
                           message=message, errors=errors), (400 if message else 200)


@bp.route("/email-bestaetigen", methods=["GET", "POST"])
def confirm_email():
    token = request.values.get("token") or ""
    message = None
    if request.method == "POST":
        try:
            result = _call("POST", "/api/v1/email-confirmations", json={"token": token})
        except ApiError as exc:
            if exc.status not in (400, 422, 409):
                raise
            message = exc.message
        else:
            text = (f"Ihre E-Mail-Adresse {result['email']} ist bestätigt. Sie können jetzt bestellen und bezahlen."
                    if result["purpose"] == "verify_email" else
                    f"Ihre neue E-Mail-Adresse {result['email']} ist bestätigt und gilt ab sofort.")
            return render_template("konto/done.html", title="E-Mail bestätigt", message=text)
    return render_template("konto/confirm_email.html", title="E-Mail-Adresse bestätigen", token=token,
                           message=message), (400 if message else 200)

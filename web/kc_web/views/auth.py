"""Anmeldung (Kundennummer or e-mail + Service-Passwort, TOTP step) and Abmelden."""
import time

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from kc_web.api import ApiError
from kc_web.app import csrf_token, safe_next

bp = Blueprint("auth", __name__)

PENDING_SECONDS = 300  # how long the password waits (encrypted, in the cookie) for the TOTP step


def _api():
    return current_app.extensions["kc_api"]


def wait_text(seconds):
    try:
        seconds = max(1, int(float(seconds)))
    except (TypeError, ValueError):
        return "einige Minuten"
    if seconds < 90:
        return f"{seconds} Sekunden"
    return f"{(seconds + 59) // 60} Minuten"


def login_error_text(exc):
    if exc.status == 429:
        return (f"{exc.message.split(' Bitte warten')[0]} Bitte warten Sie "
                f"{wait_text(exc.details.get('retry_after'))}, bevor Sie es erneut versuchen.")
    return exc.message


def _start_session(result, target):
    """Logged in: a fresh session (new cookie content, new CSRF token) holding the token."""
    token = result["token"]
    try:
        me = _api().call("GET", "/api/v1/me", token)
        name = " ".join(p for p in (me.get("first_name"), me.get("last_name")) if p) or me.get("email")
    except ApiError:
        name = ""
    session.clear()
    session.permanent = True
    session["token"] = token
    session["customer"] = {"id": result["customer_id"], "name": name}
    session["login_at"] = int(time.time())
    csrf_token()
    if result.get("notice"):  # e.g. the e-mail address still waits for its confirmation link
        flash(result["notice"], "info")
    return redirect(safe_next(target, url_for("products.webhosting")))


@bp.route("/anmeldung", methods=["GET", "POST"])
def login():
    if session.get("token") and request.method == "GET":
        return redirect(url_for("products.webhosting"))
    target = request.values.get("weiter", "")
    error, login_text = None, ""
    if request.method == "POST":
        login_text = (request.form.get("login") or "").strip()
        password = request.form.get("password") or ""
        if not login_text or not password:
            error = "Bitte geben Sie Ihre Kundennummer oder E-Mail-Adresse und Ihr Service-Passwort ein."
        else:
            try:
                result = _api().call("POST", "/api/v1/session",
                                     json={"login": login_text, "password": password})
            except ApiError as exc:
                if exc.status == 401 and exc.reason == "otp_required":
                    session["pending_login"] = {"login": login_text, "password": password,
                                                "until": int(time.time()) + PENDING_SECONDS,
                                                "weiter": safe_next(target, "")}
                    return redirect(url_for("auth.login_code"))
                if exc.status in (400, 401, 403, 422, 429):
                    error = login_error_text(exc)
                else:
                    raise
            else:
                return _start_session(result, target)
    status = 200 if error is None else 401
    return render_template("auth/login.html", title="Anmeldung", error=error, login=login_text,
                           weiter=target), status


@bp.route("/anmeldung/code", methods=["GET", "POST"])
def login_code():
    pending = session.get("pending_login")
    if not pending or pending.get("until", 0) < time.time():
        session.pop("pending_login", None)
        flash("Bitte melden Sie sich erneut an.", "info")
        return redirect(url_for("auth.login"))
    error = None
    if request.method == "POST":
        code = (request.form.get("otp") or "").strip().replace(" ", "")
        if not code:
            error = "Bitte geben Sie den Bestätigungscode oder einen Wiederherstellungscode ein."
        else:
            try:
                result = _api().call("POST", "/api/v1/session", json={
                    "login": pending["login"], "password": pending["password"], "otp": code})
            except ApiError as exc:
                if exc.status == 401 and exc.reason == "otp_required":
                    error = exc.message
                elif exc.status in (400, 401, 403, 422, 429):
                    session.pop("pending_login", None)
                    flash(login_error_text(exc), "error")
                    return redirect(url_for("auth.login"))
                else:
                    raise
            else:
                return _start_session(result, pending.get("weiter"))
    return render_template("auth/code.html", title="Bestätigungscode", error=error), (401 if error else 200)


@bp.post("/abmelden")
def logout():
    token = session.get("token")
    if token:
        try:
            _api().call("DELETE", "/api/v1/session", token)
        except ApiError:
            pass  # already ended or expired: the browser's session ends below either way
    session.clear()
    flash("Sie wurden abgemeldet.", "success")
    return redirect(url_for("auth.login"))

"""The Flask application: security headers, CSRF, the encrypted session, error pages."""
import hmac
import logging
import os
import secrets
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from kc_common.context import CUSTOMER_ID, bind_log_context
from kc_common.metrics import UNMATCHED_ROUTE, http_method_label, observe_http
from kc_web import formats
from kc_web.api import Api, ApiError
from kc_web.nav import NAV, active_group
from kc_web.session import EncryptedCookieSessionInterface

log = logging.getLogger(__name__)

# No inline script or style anywhere; forms post only to us (payments and panel logins go
# through an interstitial link, since form-action also governs redirects after a POST).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.login_code", "auth.logout", "health",
                    "konto.register", "konto.forgot", "konto.new_password", "konto.confirm_email"}
SESSION_MINUTES = 60


class ConfigError(RuntimeError):
    pass


class _Metrics:
    """WSGI middleware: every request counted by route template and status
    (``kc_http_requests_total{app="web"}``, docs/metrics.md)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status = []

        def recording_start_response(status_line, headers, exc_info=None):
            status.append(status_line)
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            observe_http("web", environ.get("kc.route", UNMATCHED_ROUTE),
                         http_method_label(environ.get("REQUEST_METHOD")),
                         status[-1].split(" ", 1)[0] if status else "500", started)


def secret_key_from_env(env=None):
    """``WEB_SECRET_KEY``; in development (``KC_ENV=development``) one is made up.

    Any other ``KC_ENV`` (unset counts as production, as for every service) requires it."""
    env = os.environ if env is None else env
    key = env.get("WEB_SECRET_KEY", "")
    development = (env.get("KC_ENV") or "").strip() == "development"
    if key and "CHANGE_ME" in key and not development:  # the placeholder of deploy/k8s/secrets
        raise ConfigError("WEB_SECRET_KEY ist noch der Platzhalter CHANGE_ME.")
    if key:
        if len(key) < 32:
            raise ConfigError("WEB_SECRET_KEY muss mindestens 32 Zeichen lang sein.")
        return key, False
    if development:
        return secrets.token_urlsafe(48), True
    raise ConfigError("WEB_SECRET_KEY fehlt (Pflicht außerhalb der Entwicklung, KC_ENV=%s)."
                      % ((env.get("KC_ENV") or "").strip() or "production"))


def create_app(gateway_url, secret_key, api=None, testing=False):
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key, TESTING=testing, MAX_CONTENT_LENGTH=30 * 1024 * 1024,
                      PERMANENT_SESSION_LIFETIME=timedelta(minutes=SESSION_MINUTES),
                      SESSION_REFRESH_EACH_REQUEST=True, TEMPLATES_AUTO_RELOAD=False)
    app.session_interface = EncryptedCookieSessionInterface()
    app.extensions["kc_api"] = api or Api(gateway_url)
    app.jinja_env.filters.update(formats.FILTERS)
    app.jinja_env.globals.update(csrf_token=csrf_token, NAV=NAV, active_group=active_group,
                                 page_url=page_url)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    app.wsgi_app = _Metrics(app.wsgi_app)

    @app.before_request
    def _before():
        g.started = time.perf_counter()
        g.api_calls, g.api_ms = 0, 0.0
        g.correlation_id = "web-" + uuid.uuid4().hex[:16]
        request.environ["kc.route"] = request.url_rule.rule if request.url_rule else UNMATCHED_ROUTE
        customer = session.get("customer") or {}
        bind_log_context(g.correlation_id, {CUSTOMER_ID: customer.get("id")})
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            check_csrf()
        if request.endpoint not in PUBLIC_ENDPOINTS and not session.get("token"):
            if request.method == "GET" and request.endpoint:
                return redirect(url_for("auth.login", weiter=request.full_path.rstrip("?")))
            return redirect(url_for("auth.login"))
        g.customer = session.get("customer")

    @app.after_request
    def _after(resp):
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        else:
            resp.headers["Cache-Control"] = "public, max-age=3600"
        if request.is_secure:
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        started = g.get("started")
        if started is not None:
            total = (time.perf_counter() - started) * 1000
            resp.headers["Server-Timing"] = (f'app;dur={total:.1f}, '
                                             f'api;dur={g.get("api_ms", 0):.1f};desc="{g.get("api_calls", 0)} calls"')
            resp.headers["X-KC-API-Calls"] = str(g.get("api_calls", 0))
        return resp

    @app.teardown_request
    def _teardown(_exc):
        bind_log_context()

    @app.errorhandler(ApiError)
    def _api_error(exc):
        if exc.status == 401:
            session.clear()
            flash("Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an.", "info")
            return redirect(url_for("auth.login"))
        if exc.status == 403 and exc.reason == "ip_not_allowed":
            session.clear()
            flash(exc.message, "error")
            return redirect(url_for("auth.login"))
        status = exc.status if exc.status in (400, 403, 404, 409, 422, 429, 503) else 500
        return render_template("error.html", title=_error_title(status), message=exc.message,
                               correlation_id=g.get("correlation_id")), status

    @app.errorhandler(400)
    def _bad_request(exc):
        return render_template("error.html", title="Ungültige Anfrage",
                               message=getattr(exc, "description", None) or "Die Anfrage war ungültig."), 400

    @app.errorhandler(404)
    def _not_found(exc):
        return render_template("error.html", title="Seite nicht gefunden",
                               message="Diese Seite gibt es nicht (mehr)."), 404

    @app.errorhandler(405)
    def _method(exc):
        return render_template("error.html", title="Nicht erlaubt",
                               message="Diese Aktion ist hier nicht möglich."), 405

    @app.errorhandler(413)
    def _too_large(exc):
        return render_template("error.html", title="Zu groß",
                               message="Die Dateien sind zu groß (höchstens 30 MB zusammen)."), 413

    @app.errorhandler(500)
    def _internal(exc):
        log.error("internal error [%s]", g.get("correlation_id"), exc_info=getattr(exc, "original_exception", exc))
        return render_template("error.html", title="Fehler",
                               message="Ein interner Fehler ist aufgetreten. Bitte versuchen Sie es später erneut.",
                               correlation_id=g.get("correlation_id")), 500

    @app.get("/health")
    def health():
        return {"status": "ok"}

    from kc_web.views import (
        account,
        auth,
        data,
        dns,
        documents,
        konto,
        order,
        products,
        support,
    )
    for module in (auth, products, order, dns, account, data, documents, support, konto):
        app.register_blueprint(module.bp)
    return app


def _error_title(status):
    return {400: "Bitte prüfen Sie Ihre Eingaben", 403: "Nicht erlaubt", 404: "Nicht gefunden",
            409: "Konflikt", 422: "Nicht möglich", 429: "Zu viele Versuche",
            503: "Vorübergehend nicht erreichbar"}.get(status, "Fehler")


# --- CSRF ---------------------------------------------------------------------------------
def csrf_token():
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf():
    expected = session.get("csrf")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not expected or not hmac.compare_digest(expected, sent):
        abort(400, description="Das Formular ist abgelaufen oder ungültig. Bitte laden Sie die Seite neu "
                               "und versuchen Sie es noch einmal.")


# --- helpers for views --------------------------------------------------------------------
def page_url(**changes):
    """The current URL with some query arguments changed (paging, search)."""
    args = request.args.to_dict()
    for key, value in changes.items():
        if value in (None, ""):
            args.pop(key, None)
        else:
            args[key] = value
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def safe_next(target, default):
    """Only local paths as redirect targets after the login."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target

"""Supportanfrage erstellen: the form (Ihr Name, Betreff, Anfrage, Anhang), the customer's
requests with their state, each thread with the team's replies, replies with attachments."""
from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from kc_web.api import ApiError
from kc_web.views import api, get, page_args

bp = Blueprint("support", __name__)

CATEGORIES = [("other", "Allgemein"), ("hosting", "Webhosting"), ("domain", "Domain / DNS"), ("server", "Server"),
              ("email", "E-Mail"), ("billing", "Rechnung / Zahlung"), ("contract", "Vertrag")]


def _files():
    return [("attachments", (f.filename, f.stream, f.mimetype or "application/octet-stream"))
            for f in request.files.getlist("attachments") if f and f.filename]


def _attachment_errors(errors):
    """``attachments.1`` -> one message under the file field."""
    texts = [v for k, v in errors.items() if k.startswith("attachments")]
    out = {k: v for k, v in errors.items() if not k.startswith("attachments")}
    if texts:
        out["attachments"] = " ".join(texts)
    return out


@bp.route("/support", methods=["GET", "POST"])
def index():
    errors, message = {}, None
    values = {"name": (session.get("customer") or {}).get("name", ""), "subject": "", "message": "",
              "category": "other"}
    if request.method == "POST":
        values = {k: (request.form.get(k) or "").strip() for k in ("name", "subject", "message", "category")}
        try:
            created = api("POST", "/api/v1/me/support/requests", data=values, files=_files())
        except ApiError as exc:
            if exc.status not in (400, 422, 403):
                raise
            message, errors = exc.message, _attachment_errors(exc.field_errors())
        else:
            flash(f"Ihre Supportanfrage {created['number']} ist bei uns eingegangen. Wir melden uns per E-Mail "
                  "oder telefonisch.", "success")
            return redirect(url_for("support.thread", number=created["number"]))
    page, per_page, _ = page_args(request)
    requests_ = get("/api/v1/me/support/requests", params={"page": page, "per_page": per_page})
    return render_template("support/index.html", title="Supportanfrage erstellen", values=values, errors=errors,
                           message=message, categories=CATEGORIES, requests=requests_["items"],
                           total=requests_["total"], page=requests_["page"], per_page=requests_["per_page"]), \
        (400 if message and errors else 403 if message else 200)


@bp.route("/support/<number>", methods=["GET", "POST"])
def thread(number):
    req = request
    errors, message, text = {}, None, ""
    if req.method == "POST":
        text = (req.form.get("message") or "").strip()
        try:
            api("POST", f"/api/v1/me/support/requests/{number}/messages", data={"message": text}, files=_files())
        except ApiError as exc:
            if exc.status not in (400, 422, 403):
                raise
            message, errors = exc.message, _attachment_errors(exc.field_errors())
        else:
            flash("Ihre Antwort ist gesendet.", "success")
            return redirect(url_for("support.thread", number=number) + "#antwort")
    item = get(f"/api/v1/me/support/requests/{number}")
    return render_template("support/request.html", title=f"Supportanfrage {item['number']}", item=item,
                           errors=errors, message=message, text=text), (400 if message else 200)


@bp.get("/support/<number>/anhang/<int:attachment_id>")
def attachment(number, attachment_id):
    file = api("GET", f"/api/v1/me/support/requests/{number}/attachments/{attachment_id}", binary=True)
    return Response(file.content, mimetype="application/octet-stream",
                    headers={"Content-Disposition": file.disposition})

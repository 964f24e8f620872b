"""Bestellen: a new product (net, VAT, gross before confirming; one idempotency key per form),
Tarifwechsel (prorated amounts before confirming) and Kündigung (end date before confirming)."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from kc_web.api import ApiError
from kc_web.formats import long_date
from kc_web.views import api, get, new_key, parallel

bp = Blueprint("order", __name__)

CATEGORIES = [("webhosting", "Webhosting & Domains"), ("server", "Server"), ("other", "Andere Produkte")]
TABLE_OF_KIND = {"hosting": "products.webhosting", "domain": "products.webhosting",
                 "server": "products.servers", "addon": "products.other"}


def _products():
    return get("/api/v1/products")["items"]


# --- product choice ------------------------------------------------------------------------
@bp.get("/bestellen")
def index():
    products = [p for p in _products() if p["active"] and p["kind"] != "option"]
    groups = [(key, label, [p for p in products if p["category"] == key]) for key, label in CATEGORIES]
    chosen = request.args.get("kategorie")
    if chosen in dict(CATEGORIES):
        groups = [g for g in groups if g[0] == chosen]
    return render_template("order/index.html", title="Bestellen", groups=groups, chosen=chosen)


def _order_form(product_id):
    products = _products()
    product = next((p for p in products if p["id"] == product_id and p["active"]), None)
    if product is None or product["kind"] == "option":
        abort(404)
    options = []
    if product["kind"] == "server":
        options = [p for p in products if p["kind"] == "option" and p["active"]
                   and product.get("family") in (p.get("attributes") or {}).get("applies_to", [])]
    return product, options


def _form_values(product, options):
    form = request.form
    periods = [int(p) for p in product["periods"]]
    try:
        months = int(form.get("period_months") or periods[-1])
    except ValueError:
        months = periods[-1]
    return {"period_months": months if months in periods else periods[-1],
            "domain": (form.get("domain") or "").strip(),
            "label": (form.get("label") or "").strip(),
            "usage": (form.get("usage") or "").strip(),
            "options": [o for o in form.getlist("options") if o in {p["id"] for p in options}]}


def _item(product, values):
    item = {"product_id": product["id"], "period_months": values["period_months"]}
    for key in ("domain", "label", "usage"):
        if values[key]:
            item[key] = values[key]
    if values["options"]:
        item["options"] = values["options"]
    return item


def _quote_for(product, values):
    """Net, VAT and gross of the first period as billing will invoice it (the API's quote:
    the customer's VAT situation, reverse charge, postage; the web computes no money)."""
    return api("POST", "/api/v1/me/orders/quote", json={"items": [_item(product, values)]})


def _api_errors(exc):
    errors = exc.field_errors("items.0.")
    for key_, text in exc.field_errors().items():
        if not key_.startswith("items.0."):
            errors.setdefault(key_, text)
    return errors


def _check(product, values):
    """What the page can tell before asking the API (the API checks everything again)."""
    errors = {}
    if product["kind"] == "domain" and not values["domain"]:
        errors["domain"] = "Bitte geben Sie die Domain ein."
    return errors


@bp.route("/bestellen/<product_id>", methods=["GET", "POST"])
def product(product_id):
    product, options = _order_form(product_id)
    step = request.form.get("step") if request.method == "POST" else None
    values = _form_values(product, options) if request.method == "POST" else {
        "period_months": int(product["periods"][-1]), "domain": request.args.get("domain", ""),
        "label": "", "usage": "", "options": []}
    errors, message = {}, None
    if step in ("pruefen", "bestellen"):
        errors = _check(product, values)
        if errors:
            message = "Bitte prüfen Sie die markierten Felder."
        elif step == "pruefen":
            try:
                quote = _quote_for(product, values)
            except ApiError as exc:
                if exc.status not in (400, 422, 404, 409):
                    raise
                message, errors = exc.message, _api_errors(exc)
            else:
                return render_template("order/confirm.html", title="Bestellung prüfen", product=product,
                                       values=values, options=options, quote=quote,
                                       idempotency_key=new_key())
        else:
            key = request.form.get("idempotency_key") or new_key()
            try:
                order = api("POST", "/api/v1/me/orders", json={"items": [_item(product, values)]},
                            headers={"Idempotency-Key": key})
            except ApiError as exc:
                if exc.status not in (400, 422, 404, 409):
                    raise
                message, errors = exc.message, _api_errors(exc)
            else:
                contract = order["contracts"][0]
                what = contract.get("name") or contract.get("domain") or contract["product_name"]
                state = "aktiv" if contract["status"] == "active" else "vorgemerkt (wird nach Zahlungseingang aktiv)"
                flash(f"Vielen Dank! Ihre Bestellung Nr. {order['id']} ist eingegangen: "
                      f"{contract['product_name']} {what if what != contract['product_name'] else ''} ist {state}.",
                      "success")
                return redirect(url_for(TABLE_OF_KIND.get(product["kind"], "products.webhosting")))
    return render_template("order/product.html", title=f"Bestellen: {product['name']}", product=product,
                           options=options, values=values, errors=errors, message=message), (400 if message else 200)


# --- Tarifwechsel --------------------------------------------------------------------------
@bp.route("/vertraege/<int:contract_id>/tarifwechsel", methods=["GET", "POST"])
def tariff(contract_id):
    contract, options = parallel(lambda: get(f"/api/v1/me/contracts/{contract_id}"),
                                 lambda: get(f"/api/v1/me/contracts/{contract_id}/tariffs"))
    items = options["items"]
    chosen_id = request.form.get("product_id") if request.method == "POST" else None
    chosen = next((o for o in items if o["product_id"] == chosen_id and o["available"]), None)
    error = None
    if request.method == "POST":
        step = request.form.get("step")
        if chosen is None:
            error = "Bitte wählen Sie einen neuen Tarif."
        elif step == "pruefen":
            try:  # the prorated credit and charge as billing books them (the API's quote)
                quote = get(f"/api/v1/me/contracts/{contract_id}/tariff-change/quote",
                            params={"product_id": chosen["product_id"]})
            except ApiError as exc:
                if exc.status not in (400, 422, 404, 409):
                    raise
                error = exc.message
            else:
                return render_template("order/tariff_confirm.html", title="Tarifwechsel prüfen",
                                       contract=contract, option=chosen, quote=quote)
        elif step == "ausfuehren":
            try:
                result = api("POST", f"/api/v1/me/contracts/{contract_id}/tariff-change",
                             json={"product_id": chosen["product_id"]})
            except ApiError as exc:
                if exc.status not in (400, 422, 404, 409):
                    raise
                error = exc.message
            else:
                if chosen["change"] == "upgrade":
                    flash(f"Der Tarif ist gewechselt: {result['product_name']} gilt ab heute.", "success")
                else:
                    pending = result.get("pending_change") or {}
                    flash(f"Der Wechsel zu {chosen['name']} ist vorgemerkt und gilt ab "
                          f"{long_date(pending.get('effective_date') or contract['next_invoice_date'])}.", "success")
                return redirect(url_for(TABLE_OF_KIND.get(contract["kind"], "products.webhosting")))
    return render_template("order/tariff.html", title="Tarifwechsel", contract=contract, items=items,
                           error=error), (400 if error else 200)


# --- Kündigung -----------------------------------------------------------------------------
@bp.route("/vertraege/<int:contract_id>/kuendigung", methods=["GET", "POST"])
def cancel(contract_id):
    error = None
    if request.method == "POST":
        try:
            result = api("POST", f"/api/v1/me/contracts/{contract_id}/cancellation")
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            error = exc.message
        else:
            what = result.get("name") or result["product_name"]
            flash(f"{result['product_name']} ({what}) ist gekündigt zum {long_date(result.get('end_date'))}.",
                  "success")
            return redirect(url_for(TABLE_OF_KIND.get(result["kind"], "products.webhosting")))
    contract = get(f"/api/v1/me/contracts/{contract_id}")
    preview = None
    if contract["status"] in ("active", "pending"):
        try:
            preview = get(f"/api/v1/me/contracts/{contract_id}/cancellation")
        except ApiError as exc:
            if exc.status != 409:
                raise
            error = error or exc.message
    return render_template("order/cancel.html", title="Kündigung", contract=contract, preview=preview,
                           error=error), (409 if error and request.method == "POST" else 200)


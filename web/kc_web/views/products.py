"""Meine Produkte: Webhosting & Domains, Server (+ Traffic anzeigen), Andere Produkte, Zugang."""
from flask import Blueprint, redirect, render_template, request, url_for

from kc_web.charts import daily_chart, traffic_chart
from kc_web.views import api, get, page_args

bp = Blueprint("products", __name__)

TRAFFIC_MONTHS = 6  # Traffic anzeigen: months of history per server in the overview chart


def _table(kind, template, title):
    page, per_page, q = page_args(request)
    params = {"page": page, "per_page": per_page}
    if q:
        params["q"] = q
    result = get(f"/api/v1/me/products/{kind}", params=params)
    return render_template(template, title=title, rows=result["items"], total=result["total"],
                           page=result["page"], per_page=result["per_page"], q=q)


@bp.get("/")
def home():
    return redirect(url_for("products.webhosting"))


@bp.get("/produkte/webhosting")
def webhosting():
    return _table("webhosting", "products/webhosting.html", "Webhosting & Domains")


@bp.get("/produkte/server")
def servers():
    return _table("servers", "products/servers.html", "Server")


@bp.get("/produkte/andere")
def other():
    return _table("other", "products/other.html", "Andere Produkte")


@bp.get("/produkte/server/traffic")
def traffic():
    # One API call for every server's history (not one per server or month).
    overview = get("/api/v1/me/traffic", params={"months": TRAFFIC_MONTHS})
    charts = []
    for item in overview["items"]:
        months = list(reversed(item.get("months") or []))  # oldest first, left to right
        charts.append((item, traffic_chart(months, item["included_gb"],
                                           title=f"Traffic von {item.get('server_name') or 'Server'}")))
    return render_template("products/traffic.html", title="Traffic anzeigen", charts=charts)


@bp.get("/produkte/server/<int:contract_id>/traffic")
def server_traffic(contract_id):
    months = request.args.get("monate", "12")
    months = months if months in ("3", "6", "12") else "12"
    usage = get(f"/api/v1/me/contracts/{contract_id}/traffic", params={"months": months})
    name = usage.get("server_name") or f"Vertrag {contract_id}"
    return render_template("products/server_traffic.html", title=f"Traffic: {name}", usage=usage,
                           months=months,
                           chart=traffic_chart(usage["months"], usage["included_gb"], title=f"Traffic von {name}"),
                           daily=daily_chart(usage.get("daily") or [], title=f"Traffic der letzten 30 Tage von {name}"))


@bp.post("/vertraege/<int:contract_id>/zugang")
def login_link(contract_id):
    """Zugang: a fresh single-use login link for the panel, followed at once."""
    link = api("POST", f"/api/v1/me/contracts/{contract_id}/login-link")
    panel = {"servercon": "ServerCon", "reseller": "Admin Reseller", "cloud": "Cloud Platform"}.get(
        link.get("panel"), "Adminoberfläche")
    return render_template("redirect.html", title=f"Weiter zu {panel}", url=link["url"],
                           text=f"Ihr Login-Link für {panel} ist bereit. Er gilt einmal und nur kurz.",
                           button=f"Weiter zu {panel}")

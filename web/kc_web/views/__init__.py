"""One blueprint per area of the sidebar."""
import uuid

from flask import current_app, session


def api(method, path, **kwargs):
    """A call to the gateway with the logged-in customer's token."""
    return current_app.extensions["kc_api"].call(method, path, session.get("token"), **kwargs)


def parallel(*thunks):
    return current_app.extensions["kc_api"].parallel(*thunks)


def get(path, **kwargs):
    return api("GET", path, **kwargs)


def new_key():
    """An idempotency key for one form (a double click sends the same key twice)."""
    return uuid.uuid4().hex


def page_args(request, per_page_default=10):
    """page / per_page / q from the query string, sane."""
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    try:
        per_page = int(request.args.get("per_page", per_page_default))
    except ValueError:
        per_page = per_page_default
    if per_page not in (10, 25, 50, 100):
        per_page = per_page_default
    q = (request.args.get("q") or "").strip()[:100]
    return page, per_page, q

"""Meine Dokumente: the library (terms, forms, price list, SLA, …) and the customer's own PDFs."""
from flask import Blueprint, Response, redirect, render_template, request

from kc_web.views import api, get, page_args, parallel

bp = Blueprint("documents", __name__)


@bp.get("/dokumente")
def index():
    page, per_page, _ = page_args(request)
    library, own = parallel(lambda: get("/api/v1/library"),
                            lambda: get("/api/v1/me/documents", params={"page": page, "per_page": per_page}))
    return render_template("documents/index.html", title="Meine Dokumente", library=library["items"],
                           own=own["items"], total=own["total"], page=own["page"], per_page=own["per_page"])


def _file(file, fallback):
    disposition = file.disposition if "filename" in file.disposition else f'attachment; filename="{fallback}"'
    return Response(file.content, mimetype=file.content_type.split(";")[0] or "application/pdf",
                    headers={"Content-Disposition": disposition})


@bp.get("/dokumente/bibliothek/<slug>")
def library(slug):
    entries = None
    if request.args.get("link"):
        entries = get("/api/v1/library")["items"]
        entry = next((e for e in entries if e["slug"] == slug and e.get("url")), None)
        if entry:
            return redirect(entry["url"])
    return _file(api("GET", f"/api/v1/library/{slug}", binary=True), f"{slug}.pdf")


@bp.get("/dokumente/eigene/<document_id>")
def own(document_id):
    return _file(api("GET", f"/api/v1/me/documents/{document_id}", binary=True), "Dokument.pdf")

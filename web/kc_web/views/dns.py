"""DNS Modul: the records of a zone; add, edit and delete as one change set; zone files."""
from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from kc_web.api import ApiError
from kc_web.views import api, get

bp = Blueprint("dns", __name__)

TYPES = ["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "DNAME"]
NEW_ROWS = 3


def _norm_name(name):
    name = (name or "").strip()
    return "@" if name in ("", "@") else name.lower()


def _ttl(text):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text  # the API names the error


def rows_from_form(form):
    """Existing rows (``r<id>``) and new rows (``n<k>``) as the customer left them."""
    rows = []
    for key in form.getlist("row"):
        prefix = key + "_"
        row = {"key": key, "new": key.startswith("n"),
               "name": form.get(prefix + "name", "").strip(),
               "type": form.get(prefix + "type", "").strip().upper(),
               "ttl": form.get(prefix + "ttl", "").strip(),
               "content": form.get(prefix + "content", "").strip(),
               "delete": bool(form.get(prefix + "delete")),
               "orig": None}
        if not row["new"]:
            row["orig"] = {"name": form.get(prefix + "orig_name", ""), "type": form.get(prefix + "orig_type", ""),
                           "ttl": form.get(prefix + "orig_ttl", ""), "content": form.get(prefix + "orig_content", "")}
        rows.append(row)
    return rows


def build_change_set(records, rows):
    """The change set that turns ``records`` (the zone as loaded) into what ``rows`` show.

    Every record set (name + type) the customer touched is written as a whole
    (``replace``; ``delete`` when nothing is left), so the result is exactly what the
    form shows, whatever the mix of edits. Returns ``(changes, provenance)``:
    provenance[i] lists, per record of change i, the form row it came from (for errors).
    """
    sets = {}
    for rec in records:
        if rec.get("managed"):
            continue
        key = (_norm_name(rec["name"]), rec["type"])
        entry = sets.setdefault(key, {"name": rec["name"], "ttl": rec["ttl"], "records": []})
        entry["records"].append([rec["content"], None])
    touched = []

    def touch(key):
        if key not in touched:
            touched.append(key)

    for row in rows:
        if row["new"]:
            if not row["content"] and not (row["name"] and row["name"] != "@"):
                continue  # an empty new row
            key = (_norm_name(row["name"]), row["type"])
            entry = sets.setdefault(key, {"name": row["name"] or "@", "ttl": None, "records": []})
            entry["records"].append([row["content"], row["key"]])
            if row["ttl"]:
                entry["ttl"] = _ttl(row["ttl"])
            entry.setdefault("rows", []).append(row["key"])
            touch(key)
            continue
        orig = row["orig"]
        old_key = (_norm_name(orig["name"]), orig["type"])
        new_key = (_norm_name(row["name"]), row["type"])
        changed = (row["delete"] or old_key != new_key or row["content"] != orig["content"]
                   or row["ttl"] != orig["ttl"])
        if not changed:
            continue
        old = sets.get(old_key)
        if old is not None:
            for item in old["records"]:
                if item[0] == orig["content"] and item[1] is None:
                    old["records"].remove(item)
                    break
            old.setdefault("rows", []).append(row["key"])
        touch(old_key)
        if row["delete"]:
            continue
        entry = sets.setdefault(new_key, {"name": row["name"] or "@", "ttl": None, "records": []})
        entry["records"].append([row["content"], row["key"]])
        entry["ttl"] = _ttl(row["ttl"]) if row["ttl"] else entry["ttl"]
        entry.setdefault("rows", []).append(row["key"])
        touch(new_key)
    changes, provenance = [], []
    for key in touched:
        entry = sets[key]
        name = entry["name"] if _norm_name(entry["name"]) == key[0] else key[0]
        if not entry["records"]:
            changes.append({"action": "delete", "name": name, "type": key[1]})
            provenance.append({"records": [], "rows": entry.get("rows", [])})
            continue
        change = {"action": "replace", "name": name, "type": key[1],
                  "records": [content for content, _ in entry["records"]]}
        if entry["ttl"] is not None:
            change["ttl"] = entry["ttl"]
        changes.append(change)
        provenance.append({"records": [origin for _, origin in entry["records"]], "rows": entry.get("rows", [])})
    return changes, provenance


def errors_by_row(fields, provenance):
    """API field paths (``changes.2.records.0.exchange``) -> the form rows they concern."""
    out, general = {}, []
    for path, messages in fields.items():
        text = messages if isinstance(messages, str) else " ".join(map(str, messages))
        parts = path.split(".")
        target = None
        if len(parts) >= 2 and parts[0] == "changes" and parts[1].isdigit() and int(parts[1]) < len(provenance):
            prov = provenance[int(parts[1])]
            if len(parts) >= 4 and parts[2] == "records" and parts[3].isdigit():
                j = int(parts[3])
                if j < len(prov["records"]):
                    target = prov["records"][j]
            if target is None and prov["rows"]:
                target = prov["rows"][0]
        if target is None:
            general.append(text)
        else:
            out.setdefault(target, []).append(text)
    return out, general


def _render(zone, rows, version, errors=None, general=None, conflict=False, status=200):
    return render_template("dns/zone.html", title=f"DNS Modul: {zone['name_unicode']}", zone=zone, rows=rows,
                           version=version, errors=errors or {}, general=general or [], conflict=conflict,
                           types=TYPES), status


def _rows_of(zone):
    rows = [{"key": f"r{rec['id']}", "new": False, "name": rec["name"], "type": rec["type"], "ttl": str(rec["ttl"]),
             "content": rec["content"], "delete": False, "orig": None, "managed": rec.get("managed")}
            for rec in zone["records"]]
    return rows + [{"key": f"n{k}", "new": True, "name": "", "type": "A", "ttl": "", "content": "",
                    "delete": False} for k in range(NEW_ROWS)]


def _zone_or_missing(zone_name):
    try:
        return get(f"/api/v1/me/zones/{zone_name}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


def _missing(zone_name):
    return render_template("error.html", title="DNS Modul",
                           message=f"Für {zone_name} gibt es (noch) keine DNS-Zone. Nach einer Bestellung wird sie "
                                   "in wenigen Sekunden angelegt – bitte laden Sie die Seite gleich neu."), 404


@bp.route("/dns/<zone>", methods=["GET", "POST"])
def zone(zone):
    if request.method == "GET":
        current = _zone_or_missing(zone)
        if current is None:
            return _missing(zone)
        return _render(current, _rows_of(current), current["version"])
    version = request.form.get("version", "")
    rows = rows_from_form(request.form)
    # the records as they were when the form was loaded: the hidden originals
    loaded = [{"name": r["orig"]["name"], "type": r["orig"]["type"], "ttl": r["orig"]["ttl"],
               "content": r["orig"]["content"], "managed": False} for r in rows if not r["new"]]
    changes, provenance = build_change_set(loaded, rows)
    if not changes:
        flash("Es gab nichts zu speichern.", "info")
        return redirect(url_for("dns.zone", zone=zone))
    try:
        result = api("POST", f"/api/v1/me/zones/{zone}/changes", json={"changes": changes},
                     headers={"If-Match": f'"{version}"'})
    except ApiError as exc:
        if exc.status not in (400, 422, 409):
            raise
        current = _zone_or_missing(zone)
        if current is None:
            return _missing(zone)
        managed = [r for r in _rows_of(current) if r.get("managed")]
        if exc.status == 409:
            return _render(current, managed + rows, version, conflict=True,
                           general=[exc.message], status=409)
        by_row, general = errors_by_row(exc.fields, provenance)
        return _render(current, managed + rows, version, errors=by_row, general=[exc.message] + general,
                       status=400)
    flash(f"Die Änderungen sind gespeichert (Seriennummer {result['serial']}).", "success")
    for warning in result.get("warnings", []):
        flash(f"Hinweis: {warning['message']}", "info")
    return redirect(url_for("dns.zone", zone=zone))


@bp.get("/dns/<zone>/zonendatei")
def export_zone(zone):
    file = api("GET", f"/api/v1/me/zones/{zone}/file", binary=True)
    return Response(file.content, mimetype="text/plain",
                    headers={"Content-Disposition": file.disposition if "filename" in file.disposition
                             else f'attachment; filename="{zone}.zone"'})


@bp.route("/dns/<zone>/import", methods=["GET", "POST"])
def import_zone(zone):
    current = _zone_or_missing(zone)
    if current is None:
        return _missing(zone)
    report, error, text = None, None, ""
    replace_all = bool(request.form.get("replace_all"))
    version = request.form.get("version") or str(current["version"])
    if request.method == "POST":
        upload = request.files.get("zone_upload")
        if upload and upload.filename:
            text = upload.read().decode("utf-8", errors="replace")
        else:
            text = request.form.get("zone_file", "")
        if not text.strip():
            error = "Bitte fügen Sie eine Zonendatei ein oder wählen Sie eine Datei aus."
        else:
            dry = request.form.get("step") != "ausfuehren"
            try:
                report = api("POST", f"/api/v1/me/zones/{zone}/import",
                             json={"zone_file": text, "replace_all": replace_all, "dry_run": dry},
                             headers={"If-Match": f'"{version}"'})
            except ApiError as exc:
                if exc.status not in (400, 422, 409):
                    raise
                error = exc.message + ("" if exc.status != 409 else
                                       " Bitte laden Sie die Seite neu und prüfen Sie den Import noch einmal.")
                if exc.status == 409:
                    version = str(current["version"])
                for texts in exc.fields.values():
                    error += " " + (texts if isinstance(texts, str) else " ".join(texts))
            else:
                if not dry:
                    flash(f"Import ausgeführt: {report['accepted']} Einträge übernommen"
                          + (f", {report['deleted_sets']} Eintragssätze gelöscht" if report["deleted_sets"] else "")
                          + (f", {len(report['rejected'])} Zeilen abgelehnt" if report["rejected"] else "") + ".",
                          "success")
                    return redirect(url_for("dns.zone", zone=zone))
    return render_template("dns/import.html", title=f"Zonendatei importieren: {current['name_unicode']}",
                           zone=current, report=report, error=error, text=text, replace_all=replace_all,
                           version=version), (400 if error else 200)

"""A local payment service provider simulator (its own HTTP process).

Behaves like a typical card / instant-transfer PSP:

* ``POST /v1/payments`` (Bearer API key, ``Idempotency-Key`` header) creates a
  payment and returns its id and a ``redirect_url`` to the confirmation page;
  the same key returns the same payment.
* ``GET /pay/<id>`` is the confirmation page (Bezahlen / Abbrechen); the
  customer's choice redirects back to the merchant's ``return_url``.
* The outcome is notified asynchronously by a signed webhook
  (``X-PSP-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")``) to the configured
  webhook URL, delivered ``--deliveries`` times (default 2: a duplicate), after
  ``--delay`` seconds, retried while the merchant does not answer 2xx.
* ``GET /v1/payments/<id>`` tells the state (for reconciliation).
* ``POST /v1/payments/<id>/complete`` (API key; test and demo helper) decides the
  outcome like the confirmation page, optionally with ``deliveries`` / ``delay``
  (``deliveries: 0`` = the webhook is lost: only reconciliation finds out).

Run: ``python -m kc_billing.psp_sim --port 8031 --webhook-url http://…/api/v1/psp/webhook``
"""
import argparse
import html
import json
import logging
import os
import threading
import time
import uuid

import requests
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

from kc_billing.psp import SIGNATURE_HEADER, sign

log = logging.getLogger("psp_sim")


class Simulator:
    def __init__(self, api_key, secret, webhook_url, deliveries=2, delay=0.2):
        self.api_key, self.secret, self.webhook_url = api_key, secret, webhook_url
        self.deliveries, self.delay = deliveries, delay
        self.payments, self.by_key = {}, {}
        self.lock = threading.Lock()

    # --- HTTP --------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:  # noqa: BLE001 - a simulator answers, never dies
            log.exception("simulator error")
            response = self.json({"error": "internal"}, 500)
        return response(environ, start_response)

    @staticmethod
    def json(body, status=200):
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def authorised(self, request):
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def dispatch(self, request):
        parts = [p for p in request.path.split("/") if p]
        if parts == ["health"]:
            return self.json({"status": "ok"})
        if parts[:2] == ["v1", "payments"]:
            if not self.authorised(request):
                return self.json({"error": "unauthorised"}, 401)
            if len(parts) == 2 and request.method == "POST":
                return self.create(request)
            payment = self.payments.get(parts[2]) if len(parts) >= 3 else None
            if payment is None:
                return self.json({"error": "not_found"}, 404)
            if len(parts) == 3 and request.method == "GET":
                return self.json(self.public(payment))
            if len(parts) == 4 and parts[3] == "complete" and request.method == "POST":
                body = request.get_json(silent=True) or {}
                self.complete(payment, body.get("outcome", "succeeded"),
                              deliveries=body.get("deliveries"), delay=body.get("delay"))
                return self.json(self.public(payment))
        if parts[:1] == ["pay"] and len(parts) == 2:
            payment = self.payments.get(parts[1])
            if payment is None:
                return Response("Zahlung unbekannt", status=404)
            if request.method == "POST":
                outcome = "succeeded" if request.form.get("action") == "pay" else "failed"
                self.complete(payment, outcome)
                sep = "&" if "?" in payment["return_url"] else "?"
                return Response(status=303, headers={
                    "Location": f"{payment['return_url']}{sep}status={payment['status']}"})
            return Response(self.page(payment), mimetype="text/html")
        return self.json({"error": "not_found"}, 404)

    def create(self, request):
        key = request.headers.get("Idempotency-Key")
        body = request.get_json(silent=True) or {}
        missing = [f for f in ("reference", "amount", "currency", "method", "return_url") if not body.get(f)]
        if not key or missing:
            return self.json({"error": "invalid", "missing": missing or ["Idempotency-Key"]}, 400)
        with self.lock:
            if key in self.by_key:
                return self.json(self.public(self.payments[self.by_key[key]]))
            pid = "psp_" + uuid.uuid4().hex[:20]
            self.payments[pid] = {"id": pid, "status": "pending", "reference": body["reference"],
                                  "amount": str(body["amount"]), "currency": body["currency"],
                                  "method": body["method"], "description": body.get("description", ""),
                                  "return_url": body["return_url"], "failure_reason": None,
                                  "redirect_url": f"{request.host_url.rstrip('/')}/pay/{pid}"}
            self.by_key[key] = pid
        return self.json(self.public(self.payments[pid]), 201)

    @staticmethod
    def public(payment):
        return {k: payment[k] for k in ("id", "status", "reference", "amount", "currency", "method",
                                        "failure_reason", "redirect_url")}

    @staticmethod
    def page(p):
        method = "Kreditkarte (VISA / Mastercard)" if p["method"] == "card" else "Sofortüberweisung"
        return (f"<!doctype html><html lang='de'><meta charset='utf-8'><title>Zahlung</title>"
                f"<h1>PSP-Simulator: {html.escape(method)}</h1>"
                f"<p>{html.escape(p['description'])}: <b>{html.escape(p['amount'])} "
                f"{html.escape(p['currency'])}</b> (Status: {html.escape(p['status'])})</p>"
                f"<form method='post'><button name='action' value='pay'>Bezahlen</button> "
                f"<button name='action' value='cancel'>Abbrechen</button></form></html>")

    # --- outcomes and webhooks ---------------------------------------------------------
    def complete(self, payment, outcome, deliveries=None, delay=None):
        with self.lock:
            if payment["status"] != "pending":
                return  # decided once
            payment["status"] = "succeeded" if outcome == "succeeded" else "failed"
            if payment["status"] == "failed":
                payment["failure_reason"] = "declined" if outcome != "cancelled" else "cancelled"
        count = self.deliveries if deliveries is None else int(deliveries)
        wait = self.delay if delay is None else float(delay)
        event = {"id": "evt_" + uuid.uuid4().hex[:20], "type": f"payment.{payment['status']}",
                 "created": int(time.time()), "data": self.public(payment)}
        body = json.dumps(event)
        for n in range(count):
            threading.Thread(target=self.deliver, args=(body, wait * (n + 1)), daemon=True).start()

    def deliver(self, body, wait, attempts=6):
        time.sleep(wait)
        for attempt in range(attempts):
            headers = {SIGNATURE_HEADER: sign(self.secret, int(time.time()), body),
                       "Content-Type": "application/json"}
            try:
                resp = requests.post(self.webhook_url, data=body.encode(), headers=headers, timeout=10)
                if resp.status_code < 300:
                    return
                log.warning("webhook answered %s", resp.status_code)
            except requests.RequestException as exc:
                log.warning("webhook delivery failed: %s", exc)
            time.sleep(min(2 ** attempt * 0.5, 10))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kc_billing.psp_sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PSP_PORT", 8031)))
    parser.add_argument("--webhook-url", default=os.environ.get(
        "PSP_WEBHOOK_URL", "http://127.0.0.1:8000/api/v1/psp/webhook"))
    parser.add_argument("--api-key", default=os.environ.get("PSP_API_KEY", "sim_key_dev"))
    # Signs with the first of PSP_WEBHOOK_SECRET's secrets (billing accepts every one listed).
    parser.add_argument("--secret", default=os.environ.get("PSP_WEBHOOK_SECRET", "whsec_dev_only_change_me")
                        .split(",")[0].strip())
    parser.add_argument("--deliveries", type=int, default=int(os.environ.get("PSP_SIM_DELIVERIES", 2)))
    parser.add_argument("--delay", type=float, default=float(os.environ.get("PSP_SIM_DELAY", 0.2)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s psp_sim %(message)s")
    sim = Simulator(args.api_key, args.secret, args.webhook_url, args.deliveries, args.delay)
    log.info("PSP simulator on http://%s:%d, webhooks to %s", args.host, args.port, args.webhook_url)
    run_simple(args.host, args.port, sim, threaded=True)


if __name__ == "__main__":
    main()

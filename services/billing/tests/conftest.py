import base64
import datetime as dt
import hashlib
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import requests
from nameko.rpc import rpc

from kc_common import testing
from kc_common.db import StandaloneDatabase
from kc_common.events import declare_topology

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec_test_secret"
API_KEY = "sim_key_test"

CUSTOMERS = {
    100001: {"customer_id": 100001, "company": "", "first_name": "Max", "last_name": "Mustermann",
             "email": "max@example.org", "street": "Ihre Straße 1", "zip": "30159", "city": "Hannover",
             "country": "DE", "phone": None, "fax": None, "mobile": None, "vat_id": None,
             "is_business": False},
    100002: {"customer_id": 100002, "company": "Andere GmbH", "first_name": "Erika",
             "last_name": "Musterfrau", "email": "erika@example.org", "street": "Weg 2", "zip": "10115",
             "city": "Berlin", "country": "DE", "phone": None, "fax": None, "mobile": None,
             "vat_id": "DE987654321", "is_business": True},
    100003: {"customer_id": 100003, "company": "Wiener Web GmbH", "first_name": "Franz",
             "last_name": "Huber", "email": "office@wienerweb.example", "street": "Ring 3",
             "zip": "1010", "city": "Wien", "country": "AT", "phone": None, "fax": None,
             "mobile": None, "vat_id": "ATU12345678", "is_business": True},
}
PDF = b"%PDF-1.4 stub invoice"


def customer(customer_id):
    data = CUSTOMERS.get(int(customer_id))
    if data is None:  # many generated customers in the run tests
        data = dict(CUSTOMERS[100001], customer_id=int(customer_id), email=f"k{customer_id}@example.org")
    return data


class IdentityStub:
    name = "identity"

    @rpc
    def get_customer(self, customer_id):
        return customer(customer_id)


class DocumentsStub:
    name = "documents"

    @rpc
    def get_document(self, document_id):
        return {"filename": f"Rechnung-{document_id}.pdf", "content_type": "application/pdf",
                "content_b64": base64.b64encode(PDF).decode(), "sha256": hashlib.sha256(PDF).hexdigest()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Psp:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # deliveries 0: the tests deliver (and duplicate) webhooks themselves
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kc_billing.psp_sim", "--port", str(self.port), "--webhook-url",
             "http://127.0.0.1:9/unused", "--deliveries", "0", "--api-key", API_KEY, "--secret", SECRET],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("PSP simulator did not start")
            time.sleep(0.1)

    def complete(self, psp_id, outcome="succeeded"):
        resp = requests.post(f"{self.url}/v1/payments/{psp_id}/complete", json={"outcome": outcome},
                             headers={"Authorization": f"Bearer {API_KEY}"})
        resp.raise_for_status()
        return resp.json()


@pytest.fixture(scope="session")
def psp():
    sim = Psp()
    yield sim
    sim.proc.terminate()
    sim.proc.wait(10)


@pytest.fixture
def config(service_config_factory, smtp_server, psp):
    """nameko config for kc_billing on this test's vhost and the run's (emptied) database."""
    return service_config_factory(
        "kc_billing", PSP_URL=psp.url, PSP_API_KEY=API_KEY, PSP_WEBHOOK_SECRET=SECRET,
        PSP_RECONCILE_AFTER=0, **smtp_server.config)


@pytest.fixture
def db(config):
    from kc_billing.models import metadata
    database = StandaloneDatabase(metadata, config["DATABASE_URL"], "billing")
    yield database
    database.engine.dispose()


@pytest.fixture
def billing(container_factory, config):
    from kc_billing.service import BillingService
    declare_topology(config["AMQP_URI"], [BillingService])
    for cls in (IdentityStub, DocumentsStub):
        container_factory(cls, config).start()
    container = container_factory(BillingService, config)
    container.start()
    return container


@pytest.fixture
def publish(config):
    """``publish(source, event_type, data, event_id=None)`` on this test's vhost; returns the envelope."""
    return partial(testing.publish, config)


def order_event(customer_id, contract_id, start, months=12, price="9.90", domain=None, vat="19.00",
                product="Domain .de"):
    from dateutil.relativedelta import relativedelta
    end = start + relativedelta(months=months) - dt.timedelta(days=1)
    return {"order_id": contract_id, "customer_id": customer_id, "items": [{
        "contract_id": contract_id, "product_id": "p", "product_name": product,
        "kind": "domain" if domain else "hosting", "domain": domain, "period_months": months,
        "price_net": price, "vat_rate": vat, "period_start": start.isoformat(),
        "period_end": end.isoformat(), "status": "active"}]}

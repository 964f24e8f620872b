"""Every process of deploy/Procfile serves Prometheus metrics on its own port (the test run
gives each a free one through <NAME>_METRICS_ADDRESS; docs/metrics.md)."""
import requests
from prometheus_client.parser import text_string_to_metric_families

from kc_common.services import SERVICES


def scrape(system, name):
    address = system.env[f"{name.upper()}_METRICS_ADDRESS"]
    response = requests.get(f"http://{address}/metrics", timeout=10)
    assert response.status_code == 200, name
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_every_process_serves_its_metrics(system):
    assert requests.get(f"{system.url}/api/v1/products", timeout=10).status_code == 200
    assert requests.get(f"{system.url}/health", timeout=10).status_code == 200
    assert requests.get(f"{system.web_url}/health", timeout=10).status_code == 200

    gateway = scrape(system, "gateway")
    assert gateway[("kc_http_requests_total", (("app", "gateway"), ("method", "GET"),
                                               ("route", "/api/v1/products"), ("status", "200")))] >= 1
    catalog = scrape(system, "catalog")
    assert catalog[("kc_rpc_requests_total", (("method", "list_products"), ("outcome", "ok"),
                                              ("service", "catalog")))] >= 1
    for name in SERVICES:  # the gateway's /health pinged every service
        samples = scrape(system, name)
        service = (("service", name),)
        assert samples[("kc_rpc_requests_total", (("method", "ping"), ("outcome", "ok"),
                                                  *service))] >= 1, name
        for gauge in ("kc_outbox_backlog", "kc_outbox_oldest_age_seconds", "kc_db_pool_in_use",
                      "kc_dead_letter_messages"):
            assert samples[(gauge, service)] >= 0, (name, gauge)
    web = scrape(system, "web")
    assert web[("kc_http_requests_total", (("app", "web"), ("method", "GET"), ("route", "/health"),
                                           ("status", "200")))] >= 1

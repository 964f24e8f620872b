"""The gateway's HTTP metrics, scraped from its own metrics port: requests are counted by
route template and status, never by the raw path (a path value must not become a label)."""
import socket

import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from kc_gateway.service import GatewayService


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples_of(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_requests_are_counted_by_route_template_and_status(container_factory, rabbit_config):
    port, metrics_port = free_port(), free_port()
    config = dict(rabbit_config, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", RPC_TIMEOUT=2,
                  METRICS_ADDRESS=f"127.0.0.1:{metrics_port}")
    container = container_factory(GatewayService, config)
    container.start()
    routes = [("/api/v1/staff/customers/<int:customer_id>", "401"), ("/api/v1/products", "503"),
              ("(unmatched)", "404")]
    before = {r: REGISTRY.get_sample_value("kc_http_requests_total", dict(
        app="gateway", method="GET", route=r[0], status=r[1])) or 0 for r in routes}
    before_count = REGISTRY.get_sample_value("kc_http_request_duration_seconds_count", dict(
        app="gateway", method="GET", route="/api/v1/products")) or 0
    base = f"http://127.0.0.1:{port}"
    # No token: 401 before any RPC. No catalog running: 503. No such route: 404.
    assert requests.get(f"{base}/api/v1/staff/customers/424242", timeout=5).status_code == 401
    assert requests.get(f"{base}/api/v1/staff/customers/424243", timeout=5).status_code == 401
    assert requests.get(f"{base}/api/v1/products", timeout=5).status_code == 503
    assert requests.get(f"{base}/api/v1/no-such-thing/424244", timeout=5).status_code == 404

    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    samples = samples_of(text)

    def count(route, status, method="GET"):
        key = (("app", "gateway"), ("method", method), ("route", route), ("status", status))
        return samples.get(("kc_http_requests_total", key), 0) - before[(route, status)]

    assert count("/api/v1/staff/customers/<int:customer_id>", "401") == 2
    assert count("/api/v1/products", "503") == 1
    assert count("(unmatched)", "404") == 1
    assert samples[("kc_http_request_duration_seconds_count", (
        ("app", "gateway"), ("method", "GET"), ("route", "/api/v1/products")))] - before_count == 1
    assert "42424" not in text  # no raw path anywhere

    container.stop()


def _consumers(connection, queue):
    """How many consume ``queue``; an exclusive queue refuses even a passive declare from
    another connection (RESOURCE_LOCKED): its owner, the gateway, consumes it."""
    from amqp.exceptions import ResourceLocked
    channel = connection.channel()
    try:
        return channel.queue_declare(queue=queue, passive=True).consumer_count
    except ResourceLocked:
        return 1
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 - the refusal closed it already
            pass


def _wait_for_consumers(amqp_uri, rabbit_manager, vhost, timeout=30):
    import time

    from kombu import Connection
    deadline = time.monotonic() + timeout
    with Connection(amqp_uri) as connection:
        while True:
            names = [q["name"] for q in rabbit_manager.get_queues(vhost)]
            counts = [_consumers(connection, name) for name in names]
            if len(names) >= 2 and all(counts):
                return
            assert time.monotonic() < deadline, dict(zip(names, counts))
            time.sleep(0.2)


def test_the_gateway_process_logs_json_lines_with_the_request_correlation_id(rabbit_config,
                                                                           rabbit_manager, tmp_path):
    """``nameko run`` with gateway/config.yaml and LOG_FORMAT=json, as a deployment runs it."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    port = free_port()
    env = dict(os.environ, LOG_FORMAT="json", AMQP_URI=rabbit_config["AMQP_URI"],
               GATEWAY_ADDRESS=f"127.0.0.1:{port}", GATEWAY_METRICS_ADDRESS="",
               PYTHONWARNINGS="ignore", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["nameko", "run", "--config", "gateway/config.yaml",
                                 "kc_gateway.service:GatewayService"], cwd=root, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/v1/staff/customers/1",
                                        headers={"X-Request-ID": "req-json-0123456789"}, timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
        assert response.status_code == 401
        assert response.headers["X-Correlation-ID"] == "req-json-0123456789"
        deadline = time.monotonic() + 10
        while "req-json-0123456789" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        # Stop it only once it has started: every queue of the vhost (the reply queue, the
        # session_ended broadcast queue) has its consumer. A SIGTERM while nameko is still
        # starting its consumers hits nameko 2.14's QueueConsumer.unregister_provider, which
        # prints an eventlet traceback (not JSON) on stderr.
        _wait_for_consumers(rabbit_config["AMQP_URI"], rabbit_manager, rabbit_config["vhost"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log_path.read_text()
    not_json = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert not not_json, text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and all(line["service"] == "gateway" for line in lines)
    ours = [line for line in lines if line.get("correlation_id") == "req-json-0123456789"]
    assert any(line["logger"] == "kc_gateway.access" and line["level"] == "INFO"
               and "GET /api/v1/staff/customers/1 401" in line["message"] for line in ours), ours
    assert all("customer_id" not in line for line in ours)  # not authenticated

"""Two gateway instances on one system: each caches ``identity.authenticate`` answers, and
every revocation (``session_ended``) reaches both within a second."""
import subprocess
import time

import pytest
import requests

from tests.conftest import ROOT, free_port, login, procfile, venv_env

REVOCATION_BOUND = 1.0  # seconds: the promise of the gateway's session cache


@pytest.fixture(scope="module")
def second_gateway(system, tmp_path_factory):
    """A second gateway process (deploy/Procfile's command) against the same broker."""
    port = free_port()
    command = dict(procfile())["gateway"]
    log = open(tmp_path_factory.mktemp("gateway2") / "gateway2.log", "w")
    proc = subprocess.Popen(["bash", "-c", "exec " + command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=venv_env(dict(system.env, GATEWAY_ADDRESS=f"127.0.0.1:{port}")))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the second gateway exited"
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "second gateway not healthy in time"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def refused_within(url, headers, expected, bound=REVOCATION_BOUND):
    """Seconds until ``url`` answers ``expected`` (polled); fails after ``bound``."""
    start = time.monotonic()
    while True:
        status = requests.get(url, headers=headers, timeout=5).status_code
        elapsed = time.monotonic() - start
        if status == expected:
            return elapsed
        assert elapsed < bound, f"still {status} after {elapsed:.2f}s (expected {expected})"
        time.sleep(0.02)


def warm(urls, headers):
    for url in urls:  # twice: the second answer comes from the gateway's cache
        for _ in range(2):
            resp = requests.get(url + "/api/v1/me", headers=headers, timeout=5)
            assert resp.status_code == 200, resp.text


def test_logout_on_one_gateway_is_refused_on_the_other_within_a_second(system, second_gateway,
                                                                       make_customer):
    _, headers = make_customer()
    warm([system.url, second_gateway], headers)
    assert requests.delete(system.url + "/api/v1/session", headers=headers).status_code == 204
    # the gateway that ended it refuses at once, the other within the bound
    assert requests.get(system.url + "/api/v1/me", headers=headers).status_code == 401
    refused_within(second_gateway + "/api/v1/me", headers, 401)


def test_logout_on_the_second_gateway_reaches_the_first(system, second_gateway, make_customer):
    _, headers = make_customer()
    warm([system.url, second_gateway], headers)
    assert requests.delete(second_gateway + "/api/v1/session", headers=headers).status_code == 204
    refused_within(system.url + "/api/v1/me", headers, 401)


def test_password_change_ends_the_other_sessions_on_every_gateway(system, second_gateway, make_customer):
    password = "Kunden-Passwort-2026"
    _, headers = make_customer(password=password)
    email = requests.get(system.url + "/api/v1/me", headers=headers).json()["email"]
    other = login(system, {"login": email, "password": password})
    warm([system.url, second_gateway], other)
    resp = requests.put(system.url + "/api/v1/me/password", headers=headers, json={
        "current_password": password, "new_password": "Neues-Kennwort-2026!x",
        "new_password_repeat": "Neues-Kennwort-2026!x"})
    assert resp.status_code == 204, resp.text
    refused_within(second_gateway + "/api/v1/me", other, 401)
    assert requests.get(system.url + "/api/v1/me", headers=other).status_code == 401
    assert requests.get(second_gateway + "/api/v1/me", headers=headers).status_code == 200


def test_whitelist_change_applies_on_every_gateway_within_a_second(system, second_gateway, make_customer):
    _, headers = make_customer()
    inside, outside = {"X-Forwarded-For": "10.77.1.5"}, {"X-Forwarded-For": "10.88.1.5"}
    for extra in (inside, outside):
        warm([second_gateway], dict(headers, **extra))
    resp = requests.put(system.url + "/api/v1/me/ip-whitelist", headers=dict(headers, **inside),
                        json={"entries": ["10.77.1.0/24"]})
    assert resp.status_code == 200, resp.text
    # the cached answer for the other address does not outlive the change
    refused_within(second_gateway + "/api/v1/me", dict(headers, **outside), 403)
    assert requests.get(second_gateway + "/api/v1/me", headers=dict(headers, **inside)).status_code == 200
    assert requests.get(system.url + "/api/v1/me", headers=dict(headers, **outside)).status_code == 403

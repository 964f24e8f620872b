"""The whole system under supervisord, as `make run` runs it: processes frozen, killed, stopped.

A separate system (own vhost, databases, ports) from the session's ``system``,
with ``HEALTH_TIMEOUT`` 3 s (not the default 2 s, so the setting is seen to
count). The tests run in file order; the last one stops it.
"""
import os
import signal
import time

import pytest
import requests

from kc_common.testing import wait_for
from tests.conftest import SERVICES

HEALTH_TIMEOUT = 3.0
MARGIN = 1.2          # HTTP, scheduling on a busy machine; less than one more timeout


@pytest.fixture(scope="module")
def sup(supervised_system):
    assert float(supervised_system.env["HEALTH_TIMEOUT"]) == HEALTH_TIMEOUT
    return supervised_system.supervisor


def health(system):
    started = time.monotonic()
    resp = requests.get(system.url + "/health", timeout=HEALTH_TIMEOUT * 5)
    return resp, time.monotonic() - started


def all_ok(system):
    resp, _ = health(system)
    return resp.status_code == 200 and set(resp.json()["services"].values()) == {"ok"}


def descendants(pid):
    """``pid``'s child processes and theirs (documents' render workers, ...)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            for child in map(int, children.read().split()):
                found += [child, *descendants(child)]
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_health_is_ok_with_every_service(supervised_system):
    resp, took = health(supervised_system)
    assert resp.status_code == 200, resp.text
    assert resp.json()["services"] == {name: "ok" for name in SERVICES}
    assert took < HEALTH_TIMEOUT


def test_frozen_services_are_unavailable_within_the_timeout_and_ok_once_resumed(supervised_system, sup):
    pids = sup.pids()
    frozen = ["catalog", "dns"]
    for name in frozen:
        os.kill(pids[name], signal.SIGSTOP)
    try:
        resp, took = health(supervised_system)
        # Two frozen services cost one timeout, not two: the pings run concurrently.
        assert HEALTH_TIMEOUT - 0.1 <= took < HEALTH_TIMEOUT + MARGIN, took
        assert resp.status_code == 503
        body = resp.json()
        assert body["status"] == "degraded"
        assert body["services"] == {name: "unavailable" if name in frozen else "ok" for name in SERVICES}
        # Asked again while still frozen: the same answer in the same time.
        resp, took = health(supervised_system)
        assert resp.json()["services"]["catalog"] == "unavailable" and took < HEALTH_TIMEOUT + MARGIN
    finally:
        for name in frozen:
            os.kill(pids[name], signal.SIGCONT)

    wait_for(lambda: all_ok(supervised_system), timeout=HEALTH_TIMEOUT * 5, message="every service ok")
    assert sup.pids() == pids  # frozen and resumed, never restarted


def test_a_killed_service_is_restarted_while_the_others_keep_running(supervised_system, sup):
    before = sup.pids()
    os.kill(before["dns"], signal.SIGKILL)

    def restarted():
        info = sup.info("dns")
        return info["statename"] == "RUNNING" and info["pid"] != before["dns"] and info["pid"]
    new = wait_for(restarted, timeout=30, message="dns restarted by supervisord")
    wait_for(lambda: all_ok(supervised_system), timeout=60, message="every service ok again")

    after = sup.pids()
    assert after["dns"] == new
    assert {n: p for n, p in after.items() if n != "dns"} == {n: p for n, p in before.items() if n != "dns"}
    assert "exited: dns (terminated by SIGKILL; not expected)" in sup.output()


def test_ctrl_c_stops_every_process(supervised_system, sup):
    pids = list(sup.pids().values())
    everything = pids + [d for pid in pids for d in descendants(pid)]  # with documents' render workers

    assert sup.interrupt(timeout=30) == 0

    assert [pid for pid in everything if alive(pid)] == []
    with pytest.raises(requests.ConnectionError):
        requests.get(supervised_system.url + "/health", timeout=2)

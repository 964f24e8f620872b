"""The gateway's speed parts that need no system: TCP_NODELAY on its connections and the
session cache's invalidation rules (the end-to-end proof is tests/test_e2e_session_cache.py)."""
import socket
import time
from types import SimpleNamespace

import eventlet

from kc_gateway.http import KcWebServer
from kc_gateway.sessions import SessionCache


def test_accepted_connections_have_tcp_nodelay():
    listener = eventlet.listen(("127.0.0.1", 0))
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        KcWebServer().get_wsgi_server(listener, lambda environ, start_response: [])
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()  # what the WSGI server serves a request on
        try:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            accepted.close()
            client.close()
    finally:
        listener.close()


def _cache(**config):
    cache = SessionCache()
    cache.container = SimpleNamespace(config=config)
    cache.setup()
    return cache


CUSTOMER = {"kind": "customer", "customer_id": 7, "session_id": "s1", "email_verified": True,
            "expires_in": 600.0}
STAFF = {"kind": "staff", "staff_id": 3, "roles": ["admin"], "session_id": "s2", "expires_in": 600.0}


def test_answers_are_kept_per_token_and_client_address_and_dropped_on_invalidation():
    cache = _cache()
    cache.put(("t1", "10.0.0.1"), CUSTOMER, cache.epoch)
    cache.put(("t2", None), STAFF, cache.epoch)
    assert cache.get(("t1", "10.0.0.1")) == CUSTOMER
    assert cache.get(("t1", "10.0.0.2")) is None  # the whitelist is checked per address
    cache.invalidate(customer_id=8)
    assert cache.get(("t1", "10.0.0.1")) == CUSTOMER
    cache.invalidate(session_id="s1")
    assert cache.get(("t1", "10.0.0.1")) is None
    assert cache.get(("t2", None)) == STAFF
    cache.invalidate(staff_id=3)
    assert cache.get(("t2", None)) is None


def test_an_answer_fetched_across_an_invalidation_is_not_stored():
    cache = _cache()
    epoch = cache.epoch  # the gateway reads it before calling identity.authenticate
    cache.invalidate(customer_id=7)  # session_ended arrives while the call is under way
    cache.put(("t1", None), CUSTOMER, epoch)
    assert cache.get(("t1", None)) is None


def test_answers_expire_with_the_ttl_or_the_session_and_the_size_is_bounded():
    cache = _cache(AUTH_CACHE_TTL=0.05, AUTH_CACHE_SIZE=2)
    cache.put(("t1", None), CUSTOMER, cache.epoch)
    cache.put(("t3", None), dict(CUSTOMER, expires_in=0), cache.epoch)  # session about to expire
    assert cache.get(("t3", None)) is None
    time.sleep(0.06)
    assert cache.get(("t1", None)) is None
    for n in range(5):
        cache.put((f"x{n}", None), CUSTOMER, cache.epoch)
    assert len(cache.entries) == 2
    off = _cache(AUTH_CACHE_TTL=0)
    off.put(("t1", None), CUSTOMER, off.epoch)
    assert off.get(("t1", None)) is None

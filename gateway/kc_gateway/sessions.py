"""A short-lived cache of ``identity.authenticate`` answers, one per gateway instance.

An authenticated request would otherwise cost a second RPC. The cache keeps an answer
for ``AUTH_CACHE_TTL`` seconds (default 10, at most until the session's own idle or
absolute expiry as identity reports it in ``expires_in``), keyed by the token's hash
*and* the client address (identity checks the customer's IP whitelist against it), for
at most ``AUTH_CACHE_SIZE`` entries (oldest dropped first).

Revocation stays immediate: identity publishes ``session_ended`` (logout, a session
ended from the list, password change or reset, IP whitelist change, e-mail confirmation
or change) in the transaction that made the change; every gateway instance receives it
on its own exclusive queue (a nameko BROADCAST handler) and drops the matching answers
within milliseconds. An answer that was being fetched while an invalidation arrived is
not stored (``epoch``), so a late reply cannot bring a revoked session back. A gateway
that is cut off from the broker misses invalidations for at most the TTL.
"""
import hashlib
import time
from collections import OrderedDict

from nameko.extensions import DependencyProvider

DEFAULT_TTL = 10.0  # seconds; config AUTH_CACHE_TTL (0 turns the cache off)
DEFAULT_SIZE = 10000  # entries; config AUTH_CACHE_SIZE


def token_key(token):
    return hashlib.sha256(token.encode("utf-8")).digest()


class SessionCache(DependencyProvider):
    """Shared by every worker of the gateway instance (a dependency provider lives as long
    as the container)."""

    def setup(self):
        config = self.container.config
        self.ttl = float(config.get("AUTH_CACHE_TTL", DEFAULT_TTL))
        self.size = int(config.get("AUTH_CACHE_SIZE", DEFAULT_SIZE))
        self.entries = OrderedDict()  # (token hash, client ip) -> (valid until, principal)
        self.epoch = 0  # bumped by every invalidation

    def get_dependency(self, worker_ctx):
        return self

    def get(self, key):
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self.entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key, principal, epoch):
        """Store unless an invalidation happened since ``epoch`` was read."""
        if self.ttl <= 0 or epoch != self.epoch:
            return
        lifetime = min(self.ttl, float(principal.get("expires_in", self.ttl)))
        if lifetime <= 0:
            return
        self.entries[key] = (time.monotonic() + lifetime, principal)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def invalidate(self, session_id=None, customer_id=None, staff_id=None, **_):
        """Drop the answers for that session, or for every session of that customer or staff
        member; with no argument, drop everything."""
        self.epoch += 1
        if session_id is None and customer_id is None and staff_id is None:
            self.entries.clear()
            return
        for key, (_, p) in list(self.entries.items()):
            if ((session_id is not None and p.get("session_id") == session_id)
                    or (customer_id is not None and p.get("customer_id") == customer_id)
                    or (staff_id is not None and p.get("staff_id") == staff_id)):
                self.entries.pop(key, None)

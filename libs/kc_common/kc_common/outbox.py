"""The outbox relay: publishes the events units of work wrote to a service's outbox table.

Each process runs one (:class:`kc_common.db.Database` starts it). It publishes the events a
unit of work claimed for it right after that commit (``EMIT_CLAIM_LEASE``), and polls for
every other unpublished row; a row is claimed with a lease before it is published, so two
relays never publish the same row at once and a dead relay's rows go out after the lease.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, or_, select, update

from kc_common.clock import as_utc, utcnow
from kc_common.events import KeptPublisher, event_exchange
from kc_common.txguard import assert_no_transaction

log = logging.getLogger(__name__)


# How long events a unit of work emitted stay reserved for its own process's relay (which
# publishes them right after the commit). Only a crash between commit and publish lets it
# run out; then any relay's poll publishes them (consumers are idempotent).
EMIT_CLAIM_LEASE = 5.0


class ClaimedEvent(namedtuple("ClaimedEvent", "id event_type payload headers")):
    """An outbox row its unit of work claimed for this process's relay (as a claimed row)."""


class OutboxRelay:
    """Publishes committed outbox rows to the services' event exchanges.

    No transaction is open while it talks to the broker: a short transaction claims a
    batch (a lease in ``claimed_until``: rows another relay claimed are skipped until
    the lease runs out), the rows are published with confirms, and a second short
    transaction marks them published. A relay that dies between the two leaves rows
    that another relay publishes again after the lease: consumers are idempotent.
    """

    def __init__(self, engine: Engine, outbox: Table, service_name: str, amqp_uri: str, batch: int = 200,
                 lease: float = 30.0) -> None:
        self.engine = engine
        self.outbox = outbox
        self.service_name = service_name
        self.amqp_uri = amqp_uri
        self.batch = batch
        self.lease = lease
        self._publisher = KeptPublisher(amqp_uri)

    def prune(self, inbox: Table, outbox_days: float, inbox_days: float) -> None:
        """Forget published outbox rows and inbox entries older than the retention."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(self.outbox.delete().where(
                self.outbox.c.published_at < now - dt.timedelta(days=outbox_days)))
            conn.execute(inbox.delete().where(inbox.c.processed_at < now - dt.timedelta(days=inbox_days)))

    def close(self) -> None:
        self._publisher.close()

    def backlog(self) -> tuple[int, float]:
        """(unpublished rows, age in seconds of the oldest) — for health and metrics."""
        t = self.outbox
        from sqlalchemy import func
        with self.engine.begin() as conn:
            count, oldest = conn.execute(select(func.count(), func.min(t.c.created_at))
                                         .where(t.c.published_at.is_(None))).one()
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        return count, age

    def _claim(self) -> Sequence[Any]:
        t = self.outbox
        now = utcnow()
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(t.c.id, t.c.event_type, t.c.payload, t.c.headers)
                .where(t.c.published_at.is_(None),
                       or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
                .order_by(t.c.id).limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            if rows:
                conn.execute(update(t).where(t.c.id.in_([r.id for r in rows]))
                             .values(claimed_until=now + dt.timedelta(seconds=self.lease)))
        return rows

    def _settle(self, published: Sequence[Any], failed: Sequence[Any]) -> None:
        t = self.outbox
        with self.engine.begin() as conn:
            if published:
                conn.execute(update(t).where(t.c.id.in_(published))
                             .values(published_at=utcnow(), claimed_until=None))
            if failed:  # give them back at once: the next try need not wait out the lease
                conn.execute(update(t).where(t.c.id.in_(failed)).values(claimed_until=None))

    def flush(self) -> int:
        """Publish one batch; returns how many rows were published."""
        rows = self._claim()
        if not rows:
            return 0
        return self.publish(rows)

    def publish(self, rows: Sequence[Any]) -> int:
        """Publish rows this relay has claimed (by ``_claim`` or at emit), then mark them
        published; on failure the rest are given back at once and the error raised."""
        assert_no_transaction("outbox relay publish")
        published = []
        try:
            for row in rows:
                # The envelope names its source: the exchange never depends on who relays it.
                source = row.payload.get("source", self.service_name)
                self._publisher.publish(row.payload, exchange=event_exchange(source),
                                        routing_key=row.event_type, headers=row.headers)
                published.append(row.id)
        except Exception:
            self._settle(published, [r.id for r in rows if r.id not in set(published)])
            raise
        self._settle(published, [])
        log.debug("outbox relay of %s published %d event(s)", self.service_name, len(rows))
        return len(rows)

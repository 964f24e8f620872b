"""The soak workload and its checks, shared by tests/test_soak.py, tests/test_faults.py and
the benchmark tests/bench/soak.py.

Customers act as a person clicking through the customer center would, only faster:
they order domains and hosting packages (each order with an ``Idempotency-Key``, some
sent twice as a client retry), change tariffs, cancel, open support requests with an
attachment (multipart), read their account and pay what is open by card through the PSP
simulator; a support agent answers their requests. Every request is recorded with its
answer. Afterwards :func:`verify` asks the API whether every 2xx request is stored exactly
once and every refused one left nothing behind (orders by their unique domain, support
requests by their unique subject, staff replies by their unique text, payments by their
id, invoices by their lines).

Everything here runs in green threads of the test process (the root conftest
monkey-patches), like the e2e tests' HTTP calls.
"""
import random
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import eventlet
import requests
from eventlet.queue import LightQueue

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
ME_SUPPORT = "/api/v1/me/support/requests"
DESK = "/api/v1/staff/support/requests"
REQUEST_TIMEOUT = 30.0   # a request not answered by then is recorded as status 0
# Invoice lines of a tariff change (billing's proration); every other line of a contract is
# the invoice of its first period (the soak never reaches a second period).
PRORATION_PREFIXES = ("Gutschrift ", "Tarifwechsel ")


@dataclass
class Call:
    """One HTTP request of the workload and its answer."""
    actor: str
    action: str
    method: str
    path: str
    started: float           # time.monotonic()
    elapsed: float = 0.0
    status: int = 0          # 0: no answer (connection error or client timeout)
    body: object = None
    error: str = ""
    ref: dict = field(default_factory=dict)   # what identifies the change (domain, subject, ...)
    request_id: str = ""

    @property
    def ok(self):
        return 200 <= self.status < 300


class Recorder:
    """Every request with its status, latency and answer."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.calls = []

    def call(self, session, actor, action, method, path, *, ref=None, url=None, **kwargs):
        request_id = uuid.uuid4().hex
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("X-Request-ID", request_id)
        call = Call(actor, action, method, path, time.monotonic(), ref=dict(ref or {}),
                    request_id=request_id)
        self.calls.append(call)
        try:
            resp = session.request(method, url or self.base_url + path, headers=headers,
                                   timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            call.elapsed = time.monotonic() - call.started
            call.error = f"{type(exc).__name__}: {exc}"[:300]
            return call
        call.elapsed = time.monotonic() - call.started
        call.status = resp.status_code
        if resp.headers.get("Content-Type", "").startswith("application/json"):
            try:
                call.body = resp.json()
            except ValueError:
                call.body = resp.text[:500]
        else:
            call.body = {"location": resp.headers.get("Location")} if resp.is_redirect else None
        return call

    def of(self, *actions):
        return [c for c in self.calls if c.action in actions]

    def figures(self, seconds):
        """requests/s, latency percentiles and errors of the workload's API calls."""
        api = [c for c in self.calls if c.action != "psp_confirm"]
        latencies = sorted(c.elapsed for c in api)
        statuses = Counter(c.status for c in api)
        return {
            "requests": len(api),
            "seconds": round(seconds, 1),
            "requests_per_s": round(len(api) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(1000 * percentile(latencies, 50)),
            "p99_ms": round(1000 * percentile(latencies, 99)),
            "max_ms": round(1000 * latencies[-1]) if latencies else 0,
            "errors_5xx_or_none": sum(n for s, n in statuses.items() if s == 0 or s >= 500),
            "refused_4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
            "statuses": dict(sorted(statuses.items())),
        }


def percentile(values, p):
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, p - 1))] \
        if p < 100 else values[-1]


class HealthWatch:
    """Polls ``/health`` in a green thread; the longest time without an all-ok answer.

    ``check`` (optional) runs with every poll (e.g. ``System.check_running``): what it
    raises is kept in ``failures``.
    """

    def __init__(self, base_url, interval=0.5, timeout=10.0, check=None):
        self.base_url, self.interval, self.timeout, self.check = base_url, interval, timeout, check
        self.samples = []      # (monotonic, ok, services or error)
        self.failures = []
        self._running = False
        self._thread = None
        self.started = self.stopped = None

    def start(self):
        self._running = True
        self.started = time.monotonic()
        self._thread = eventlet.spawn(self._loop)
        return self

    def _loop(self):
        session = requests.Session()
        while self._running:
            t = time.monotonic()
            try:
                resp = session.get(self.base_url + "/health", timeout=self.timeout)
                body = resp.json()
                ok = resp.status_code == 200 and set(body["services"].values()) == {"ok"}
                self.samples.append((t, ok, body.get("services"), time.monotonic() - t))
            except (requests.RequestException, ValueError, KeyError) as exc:
                self.samples.append((t, False, repr(exc), time.monotonic() - t))
            if self.check is not None:
                try:
                    self.check()
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.failures.append(repr(exc)[:2000])
            eventlet.sleep(max(0.0, self.interval - (time.monotonic() - t)))

    def stop(self):
        self._running = False
        self.stopped = time.monotonic()
        if self._thread is not None:
            self._thread.wait()
        return self

    def bad(self):
        return [(round(t - self.started, 1), s) for t, ok, s, _ in self.samples if not ok]

    def longest_gap(self):
        """Longest time (s) between two all-ok answers (from the start, to the end)."""
        last, gap = self.started, 0.0
        for t, ok, _, took in self.samples:
            if ok:
                gap = max(gap, t + took - last)
                last = t + took
        return round(max(gap, (self.stopped or time.monotonic()) - last), 2)


# --- the workload -----------------------------------------------------------------------


class Customer:
    """One customer's session and what the API said to them."""

    def __init__(self, name, customer_id, headers, recorder, rng):
        self.name, self.customer_id, self.headers = name, customer_id, headers
        self.rec, self.rng = recorder, rng
        self.http = requests.Session()
        self.hosting = []        # contract ids of hosting packages that may change tariff
        self.domains = []        # contract ids of domain registrations that may be cancelled
        self.open_requests = LightQueue()

    def call(self, action, method, path, **kwargs):
        kwargs["headers"] = {**self.headers, **(kwargs.pop("headers", None) or {})}
        return self.rec.call(self.http, self.name, action, method, path, **kwargs)

    def _domain(self):
        return f"soak-{uuid.uuid4().hex[:10]}.de"

    def order_domain(self):
        domain = self._domain()
        self._order("order_domain", [{"product_id": "domain-de", "domain": domain}], domain)

    def order_package(self):
        domain = self._domain()
        self._order("order_package", [
            {"product_id": "hosting-business", "period_months": 12, "domain": domain},
            {"product_id": "domain-de", "domain": domain}], domain)

    def _order(self, action, items, domain):
        key = str(uuid.uuid4())
        call = self.call(action, "POST", "/api/v1/me/orders", json={"items": items},
                         headers={"Idempotency-Key": key}, ref={"domain": domain, "key": key})
        if call.ok:
            self._remember(call.body)
            if self.rng.random() < 0.2:  # the client did not see the answer and sends it again
                self.call(action + "_retry", "POST", "/api/v1/me/orders", json={"items": items},
                          headers={"Idempotency-Key": key}, ref={"domain": domain, "key": key})
        return call

    def _remember(self, order):
        for c in order["contracts"]:
            if c["product_id"] == "hosting-business":
                self.hosting.append(c["id"])
            elif c["kind"] == "domain":
                self.domains.append(c["id"])

    def change_tariff(self):
        if not self.hosting:
            return self.order_package()
        contract_id = self.hosting.pop(self.rng.randrange(len(self.hosting)))
        self.call("tariff_change", "POST", f"/api/v1/me/contracts/{contract_id}/tariff-change",
                  json={"product_id": "hosting-business-pro"}, ref={"contract_id": contract_id})

    def cancel(self):
        if not self.domains:
            return self.order_domain()
        contract_id = self.domains.pop(self.rng.randrange(len(self.domains)))
        self.call("cancel", "POST", f"/api/v1/me/contracts/{contract_id}/cancellation",
                  ref={"contract_id": contract_id})

    def open_support_request(self):
        subject = f"Soak {uuid.uuid4().hex[:12]}"
        form = [("name", (None, "Erika Musterfrau")), ("subject", (None, subject)),
                ("message", (None, "Bitte prüfen Sie mein Postfach.")), ("category", (None, "email")),
                ("attachments", ("bildschirm.png", PNG, "image/png"))]
        call = self.call("support_open", "POST", ME_SUPPORT, files=form, ref={"subject": subject})
        if call.ok:
            self.open_requests.put(call.body["number"])
        return call

    def read(self):
        path = self.rng.choice(["/api/v1/me/contracts", "/api/v1/me/account", ME_SUPPORT,
                                "/api/v1/me/zones"])
        self.call("read", "GET", path)

    def pay(self):
        account = self.call("read", "GET", "/api/v1/me/account")
        if not account.ok or not account.body["balance"].startswith("-"):
            return
        key = str(uuid.uuid4())
        call = self.call("payment", "POST", "/api/v1/me/payments", json={"method": "card"},
                         headers={"Idempotency-Key": key}, ref={"key": key})
        if call.ok and call.body.get("redirect_url"):
            # the customer confirms on the PSP's page, which sends its webhooks to the gateway
            confirm = self.rec.call(self.http, self.name, "psp_confirm", "POST", "(psp)",
                                    url=call.body["redirect_url"], data={"action": "pay"},
                                    allow_redirects=False,
                                    ref={"payment_id": call.body["payment_id"]})
            call.ref["confirmed"] = confirm.status == 303

    ACTIONS = [("order_domain", 25), ("order_package", 12), ("change_tariff", 12), ("cancel", 10),
               ("open_support_request", 18), ("pay", 8), ("read", 15)]

    def run(self, until, pause=(0.0, 0.2)):
        names = [a for a, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        while time.monotonic() < until:
            getattr(self, self.rng.choices(names, weights)[0])()
            eventlet.sleep(self.rng.uniform(*pause))


class SupportAgent:
    """Answers the customers' new requests (multipart, with an attachment)."""

    def __init__(self, headers, recorder, customers):
        self.headers, self.rec, self.customers = headers, recorder, customers
        self.http = requests.Session()

    def run(self, until):
        while time.monotonic() < until:
            answered = False
            for customer in self.customers:
                if customer.open_requests.empty():
                    continue
                number = customer.open_requests.get()
                text = f"Antwort {uuid.uuid4().hex[:12]}"
                self.rec.call(self.http, "agent", "staff_reply", "POST", f"{DESK}/{number}/replies",
                              headers=self.headers, ref={"number": number, "text": text,
                                                         "customer": customer.name},
                              files=[("message", (None, text)),
                                     ("attachments", ("antwort.txt", b"erledigt\n", "text/plain"))])
                answered = True
            if not answered:
                eventlet.sleep(0.2)


def run_workload(system, make_customer, agent_headers, *, customers=5, seconds=45, seed=None):
    """The soak: ``customers`` concurrent customers and one support agent for ``seconds``.

    Returns ``(recorder, customers, duration)``.
    """
    rng = random.Random(seed)
    recorder = Recorder(system.url)
    people = []
    for i in range(customers):
        customer_id, headers = make_customer()
        people.append(Customer(f"c{i}", customer_id, headers, recorder, random.Random(rng.random())))
    agent = SupportAgent(agent_headers, recorder, people)
    started = time.monotonic()
    until = started + seconds
    threads = [eventlet.spawn(c.run, until) for c in people] + [eventlet.spawn(agent.run, until)]
    for t in threads:
        t.wait()
    return recorder, people, time.monotonic() - started


# --- the checks ---------------------------------------------------------------------------


def pages(http, url, headers, per_page=100, **params):
    """Every item of a paged list."""
    items, page = [], 1
    while True:
        resp = http.get(url, headers=headers, params={**params, "page": page, "per_page": per_page},
                        timeout=REQUEST_TIMEOUT)
        resp.raise_for_status()
        body = resp.json()
        items += body["items"]
        if page * per_page >= body["total"]:
            return items
        page += 1


def _account_pages(http, url, headers):
    items, page = [], 1
    while True:
        resp = http.get(url, headers=headers, params={"page": page, "per_page": 100},
                        timeout=REQUEST_TIMEOUT)
        resp.raise_for_status()
        body = resp.json()["bookings"]
        items += body["items"]
        if page * 100 >= body["total"]:
            return items
        page += 1


def problems_of(base_url, recorder, customers, agent_headers, *, uncertain=()):
    """Every way the stored state disagrees with what the API answered (empty: all good).

    ``uncertain``: calls whose outcome the client cannot know (in flight when the broker
    was cut, answered 503 because the reply was lost): they may be stored, but at most once.
    """
    found = []
    uncertain = {id(c) for c in uncertain}
    for customer in customers:
        found += _customer_problems(base_url, recorder, customer, uncertain)
    found += _reply_problems(base_url, recorder, customers, agent_headers, uncertain)
    return found


def _customer_problems(base_url, recorder, customer, uncertain):
    http, h = customer.http, customer.headers
    contracts = pages(http, base_url + "/api/v1/me/contracts", h)
    zone_count = Counter(z["name"] for z in pages(http, base_url + "/api/v1/me/zones", h))
    zones = set(zone_count)
    bookings = _account_pages(http, base_url + "/api/v1/me/account", h)
    lines = []
    for b in bookings:
        if b["type"] == "RE" and b["invoice_number"]:
            resp = http.get(f"{base_url}/api/v1/me/invoices/{b['invoice_number']}", headers=h,
                            timeout=REQUEST_TIMEOUT)
            resp.raise_for_status()
            lines += resp.json()["lines"]
    support = pages(http, base_url + ME_SUPPORT, h)
    mine = [c for c in recorder.calls if c.actor == customer.name]
    found = []
    who = f"{customer.name} (KC{customer.customer_id})"

    # Orders: every contract comes from exactly one 2xx order; a refused order left nothing.
    by_domain = defaultdict(list)
    for c in contracts:
        by_domain[c.get("domain") or c.get("label") or c.get("name")].append(c)
    stored_ids = Counter(c["id"] for c in contracts)
    answered_ids = set()
    orders = [c for c in mine if c.action.startswith("order_")]
    by_key = defaultdict(list)
    for call in orders:
        by_key[call.ref["key"]].append(call)
    for calls in by_key.values():
        ok = [c for c in calls if c.ok]
        domain = calls[0].ref["domain"]
        expected = 2 if calls[0].action.startswith("order_package") else 1
        ids = {tuple(sorted(x["id"] for x in c.body["contracts"])) for c in ok}
        if len(ids) > 1:
            found.append(f"{who}: the same Idempotency-Key answered different orders: {ids}")
        have = [c for c in contracts if domain in (c.get("domain"), c.get("label"), c.get("name"))]
        if ok:
            answered_ids.update(ids.pop() if ids else ())
            if len(have) != expected:
                found.append(f"{who}: order {domain} answered {ok[0].status}, stored "
                             f"{len(have)} contract(s), expected {expected}")
            if domain not in zones:
                found.append(f"{who}: order {domain} answered {ok[0].status}: no zone")
            elif zone_count[domain] != 1:
                found.append(f"{who}: zone {domain} listed {zone_count[domain]} times")
        elif any(id(c) in uncertain for c in calls):
            if len(have) not in (0, expected) or zone_count[domain] > 1:
                found.append(f"{who}: uncertain order {domain}: {len(have)} contract(s), "
                             f"{zone_count[domain]} zone(s)")
            answered_ids.update(c["id"] for c in have)
        else:
            statuses = sorted(c.status for c in calls)
            if have:
                found.append(f"{who}: order {domain} answered {statuses} but "
                             f"{len(have)} contract(s) were stored")
            if domain in zones:
                found.append(f"{who}: order {domain} answered {statuses} but its zone exists")
    for cid, n in stored_ids.items():
        if n != 1:
            found.append(f"{who}: contract {cid} listed {n} times")
    extra = set(stored_ids) - answered_ids
    if extra:
        found.append(f"{who}: contracts no 2xx order answered: {sorted(extra)}")

    # Invoices: each contract's first period invoiced exactly once; tariff changes prorated
    # once if (and only if) they were accepted.
    first = Counter(line["contract_id"] for line in lines
                    if not line["text"].startswith(PRORATION_PREFIXES))
    prorated = Counter(line["contract_id"] for line in lines if line["text"].startswith("Tarifwechsel "))
    for cid in stored_ids:
        if first[cid] != 1:
            found.append(f"{who}: contract {cid} invoiced {first[cid]} times for its first period")
    for cid in set(first) - set(stored_ids):
        found.append(f"{who}: invoice lines for contract {cid}, which is not the customer's")
    status_of = {c["id"]: c for c in contracts}
    for call in (c for c in mine if c.action == "tariff_change"):
        cid = call.ref["contract_id"]
        product = status_of.get(cid, {}).get("product_id")
        if call.ok:
            if product != "hosting-business-pro" or prorated[cid] != 1:
                found.append(f"{who}: tariff change of {cid} answered {call.status}: product "
                             f"{product}, prorated {prorated[cid]} times")
        elif id(call) not in uncertain and (product != "hosting-business" or prorated[cid]):
            found.append(f"{who}: tariff change of {cid} answered {call.status}: product "
                         f"{product}, prorated {prorated[cid]} times")
    for call in (c for c in mine if c.action == "cancel"):
        cid = call.ref["contract_id"]
        state = status_of.get(cid, {}).get("status")
        if call.ok and state != "cancelled":
            found.append(f"{who}: cancellation of {cid} answered {call.status}, contract {state}")
        if not call.ok and id(call) not in uncertain and state == "cancelled":
            found.append(f"{who}: cancellation of {cid} answered {call.status}, yet cancelled")

    # Support requests by their unique subject.
    subjects = Counter(r["subject"] for r in support)
    asked = set()
    for call in (c for c in mine if c.action == "support_open"):
        subject = call.ref["subject"]
        asked.add(subject)
        n = subjects[subject]
        if call.ok and n != 1:
            found.append(f"{who}: support request '{subject}' answered {call.status}, stored {n} times")
        if not call.ok and n and (id(call) not in uncertain or n > 1):
            found.append(f"{who}: support request '{subject}' answered {call.status}, stored {n} times")
    for subject in set(subjects) - asked:
        found.append(f"{who}: support request '{subject}' nobody asked for")

    # Payments: every accepted and confirmed card payment succeeded and is booked once;
    # nothing else is booked as a payment.
    payments = {}
    for call in (c for c in mine if c.action == "payment" and c.ok):
        payments[call.body["payment_id"]] = call
    confirmed = [p for p, c in payments.items() if c.ref.get("confirmed")]
    paid = 0
    for payment_id in confirmed:
        resp = http.get(f"{base_url}/api/v1/me/payments/{payment_id}", headers=h, timeout=REQUEST_TIMEOUT)
        if resp.status_code != 200 or resp.json()["status"] != "succeeded":
            found.append(f"{who}: confirmed payment {payment_id}: {resp.status_code} {resp.text[:200]}")
        else:
            paid += 1
    booked = [b for b in bookings if b["type"] == "ZAHLUNG"]
    if len(booked) != paid:
        found.append(f"{who}: {paid} payment(s) succeeded, {len(booked)} booked")
    return found


def _reply_problems(base_url, recorder, customers, agent_headers, uncertain):
    found = []
    http = requests.Session()
    for call in recorder.of("staff_reply"):
        resp = http.get(f"{base_url}{DESK}/{call.ref['number']}", headers=agent_headers,
                        timeout=REQUEST_TIMEOUT)
        if resp.status_code != 200:
            found.append(f"staff desk: request {call.ref['number']}: {resp.status_code}")
            continue
        n = sum(1 for m in resp.json()["messages"] if m["kind"] == "staff" and m["body"] == call.ref["text"])
        if call.ok and n != 1:
            found.append(f"staff reply to {call.ref['number']} answered {call.status}, stored {n} times")
        if not call.ok and n and (id(call) not in uncertain or n > 1):
            found.append(f"staff reply to {call.ref['number']} answered {call.status}, stored {n} times")
    return found


def settle(base_url, recorder, customers, agent_headers, timeout=90.0, uncertain=()):
    """Wait (bounded) until the asynchronous work (invoices, zones, bookings) agrees with the
    answers; returns the problems that remain (empty: all good)."""
    deadline = time.monotonic() + timeout
    while True:
        found = problems_of(base_url, recorder, customers, agent_headers, uncertain=uncertain)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(2.0)


# --- the system's side ------------------------------------------------------------------


def queue_depths(rabbit_manager, system, suffix=None):
    """``{queue: messages}`` of the system's vhost, counted exactly (a passive declare each:
    the management API's figures lag by seconds)."""
    from kombu import Connection
    names = [q["name"] for q in rabbit_manager.get_queues(system.vhost)
             if suffix is None or q["name"].endswith(suffix)]
    depths = {}
    with Connection(system.amqp_uri) as conn:
        for name in names:
            channel = conn.channel()
            try:
                depths[name] = channel.queue_declare(name, passive=True).message_count
            except Exception:  # noqa: BLE001 - an exclusive/auto-delete queue that is gone meanwhile
                pass
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001
                    pass
    return depths


def dead_letters(rabbit_manager, system):
    """Dead-letter queues that hold messages, with the first message's error."""
    parked = {q: n for q, n in queue_depths(rabbit_manager, system, ".dead").items() if n}
    details = {}
    for queue in parked:
        messages = rabbit_manager.get_messages(system.vhost, queue, count=1, requeue=True)
        details[queue] = (parked[queue], [m.get("properties", {}).get("headers", {}).get("x-kc-error")
                                          for m in messages])
    return details


BAD_LOG_LINES = ("database is locked", "Traceback")


def bad_log_lines(system, names=None, patterns=BAD_LOG_LINES):
    """Log lines of the system's processes that show a lock or a crash."""
    found = []
    for name in names or system.names():
        for line in system.log(name).splitlines():
            if any(p in line for p in patterns):
                found.append(f"{name}: {line[:300]}")
    return found


def traceback_context(system, name, pattern="Traceback", before=3, after=25):
    """The log lines around the first ``pattern`` in ``name``'s log (for a failure message)."""
    lines = system.log(name).splitlines()
    for i, line in enumerate(lines):
        if pattern in line:
            return "\n".join(lines[max(0, i - before):i + after])
    return ""

"""`make bench`: the speed figures of issue 17, product against anchor in the same run.

Starts what it needs (its own RabbitMQ vhost, SQLite databases in a temporary directory,
the six services and the gateway from deploy/Procfile, plus the anchor of bench/anchor.py),
then measures with wrk, interleaving product and anchor, and prints a Markdown table:
figure, product, anchor, ratio, target, met. ``--write`` appends it, with the date and the
machine's load, to docs/performance.md. Each round also times orders until billing's booking
and dns's zone exist (:class:`OrderWatch`). ``--only``/``--skip`` choose parts
(``read``, ``orders``, ``billing_run``, ``dns_changesets``). The billing run
(bench/billing_run.py: 100,000 due contracts on PostgreSQL, one process and two at once) and
the DNS change sets (bench/dns_changesets.py: a 10,000-record zone, SQLite and PostgreSQL) set
up their own fresh databases and print their own anchors.

CPU per request is read from /proc (utime + stime) of every started process plus the
broker (beam.smp, shared with whatever else runs on this machine: noisy) over each wrk run.
Not part of `make test`: figures, not timed assertions.
"""
import argparse
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy"))
import supervisord_conf  # noqa: E402

from kc_common.services import SERVICES  # noqa: E402

DEMO = {"login": "demo@kundencenter.example", "password": "Hafen-Leuchtturm-2026"}
MGMT = os.environ.get("RABBIT_MGMT", "http://127.0.0.1:15672")
AMQP = os.environ.get("RABBIT_AMQP", "pyamqp://guest:guest@127.0.0.1:5672")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICK


def broker_pids():
    out = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wrk(url, *, clients, seconds, headers=()):
    args = ["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{seconds}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    requests_ = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {"requests": requests_, "rps": rps, "p50_ms": p50, "errors": errors}


def _ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


class Bench:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-bench-"))
        self.vhost = f"kc_bench_{uuid.uuid4().hex[:8]}"
        self.port, self.anchor_port = free_port(), free_port()
        self.processes = {}
        self.env = dict(os.environ, AMQP_URI=f"{AMQP}/{self.vhost}", GATEWAY_ADDRESS=f"127.0.0.1:{self.port}",
                        KC_ENV=os.environ.get("KC_ENV") or "development",
                        PYTHONWARNINGS="ignore", SMTP_PORT=str(free_port()), MAIL_DIR=str(self.tmp / "mail"),
                        LOG_LEVEL="WARNING", LOGIN_MAX_FAILURES_PER_ADDRESS="1000",
                        SUPPORT_ATTACHMENT_DIR=str(self.tmp / "attachments"),
                        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        for svc in SERVICES:
            self.env[f"{svc.upper()}_DATABASE_URL"] = f"sqlite:///{self.tmp / (svc + '.db')}"

    def run(self, *args):
        subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self):
        auth = ("guest", "guest")
        requests.put(f"{MGMT}/api/vhosts/{self.vhost}", auth=auth, timeout=10).raise_for_status()
        requests.put(f"{MGMT}/api/permissions/{self.vhost}/guest", auth=auth, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        for svc in SERVICES:
            self.run("-m", "kc_common.manage", f"services/{svc}/config.yaml", "migrate")
            self.run("-m", "kc_common.manage", f"services/{svc}/config.yaml", "seed")
        self.run("-m", "kc_common.topology")
        commands = dict(supervisord_conf.procfile())
        for name in SERVICES + ("gateway",):
            self.spawn(name, commands[name])
        config = self.tmp / "anchor.yaml"
        config.write_text(f"AMQP_URI: {self.env['AMQP_URI']}\nWEB_SERVER_ADDRESS: 127.0.0.1:{self.anchor_port}\n"
                          f"max_workers: 50\n")
        self.spawn("anchor", f"nameko run --config {config} anchor:AnchorService", cwd=ROOT / "bench")
        deadline = time.monotonic() + 120
        while True:
            for name, (proc, _) in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {(self.tmp / (name + '.log')).read_text()[-2000:]}")
            try:
                if (requests.get(f"http://127.0.0.1:{self.port}/health", timeout=5).status_code == 200
                        and requests.get(f"http://127.0.0.1:{self.anchor_port}/anchor", timeout=5).ok):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("system not healthy in time")
            time.sleep(0.5)

    def spawn(self, name, command, cwd=ROOT):
        log = open(self.tmp / f"{name}.log", "w")
        self.processes[name] = (subprocess.Popen(["bash", "-c", "exec " + command], cwd=cwd, env=self.env,
                                                 stdout=log, stderr=subprocess.STDOUT), log)

    def measure(self, url, *, clients, seconds, headers=()):
        own, broker = [proc.pid for proc, _ in self.processes.values()], broker_pids()
        before, before_broker = cpu_seconds(own), cpu_seconds(broker)
        result = wrk(url, clients=clients, seconds=seconds, headers=headers)
        n = max(1, result["requests"])
        result["cpu_own_ms"] = (cpu_seconds(own) - before) * 1000 / n
        result["cpu_ms"] = result["cpu_own_ms"] + (cpu_seconds(broker) - before_broker) * 1000 / n
        return result

    def stop(self):
        for proc, _ in self.processes.values():
            proc.terminate()
        for proc, log in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        try:
            requests.delete(f"{MGMT}/api/vhosts/{self.vhost}", auth=("guest", "guest"), timeout=10)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class OrderWatch:
    """Order → RE booking visible and DNS zone created, timed without polling.

    A thread of the bench consumes, on an exclusive queue of its own, billing's
    ``invoice_issued`` and dns's ``zone_changed``. Each is written to the outbox in the very
    transaction that books the invoice (the RE booking) or creates the zone, and published
    by that service's relay after the commit: its arrival here is the moment the booking or
    zone is visible plus one relay publish and broker hop (so the figure errs high, never low).
    ``place`` posts one order of a new domain through the gateway and returns the seconds
    from sending the request until both have arrived (and the order's answer alone).
    """

    def __init__(self, amqp_uri, base, headers, also=()):
        import threading

        from kombu import Connection, Exchange, Queue
        self.base, self.headers = base, headers
        self.arrived, self.received = {}, []
        self._changed = threading.Condition()
        self._connection = Connection(amqp_uri)
        queue = Queue(f"bench-orders-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True,
                      bindings=[], durable=False)
        channel = self._connection.channel()
        queue = queue(channel)
        queue.declare()
        for source, event_type in (("billing", "invoice_issued"), ("dns", "zone_changed"), *also):
            queue.bind_to(Exchange(f"{source}.events", type="topic", durable=True), routing_key=event_type)
        self._queue, self._stop = queue, False
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def _consume(self):
        from kombu import Consumer
        with Consumer(self._queue.channel, [self._queue], no_ack=True, accept=["json"],
                      callbacks=[self._on_event]):
            while not self._stop:
                try:
                    self._connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass

    def _on_event(self, body, message):
        now = time.perf_counter()
        data = body.get("data", {})
        keys = [("zone", data.get("zone"))] if body.get("type") == "zone_changed" else \
            [("contract", line.get("contract_id")) for line in data.get("lines", [])]
        with self._changed:
            self.received.append((now, time.time(), body))  # for a closer look (bench/ scripts)
            for key in keys:
                self.arrived.setdefault(key, now)
            self._changed.notify_all()

    def place(self, timeout=10.0):
        domain = f"bench-{uuid.uuid4().hex[:12]}.de"
        started = time.perf_counter()
        resp = requests.post(self.base + "/api/v1/me/orders", timeout=timeout,
                             headers={**self.headers, "Idempotency-Key": str(uuid.uuid4())},
                             json={"items": [{"product_id": "domain-de", "domain": domain}]})
        answered = time.perf_counter()
        resp.raise_for_status()
        contract = ("contract", resp.json()["contracts"][0]["id"])
        wanted = (contract, ("zone", domain))
        with self._changed:
            done = self._changed.wait_for(lambda: all(k in self.arrived for k in wanted),
                                          timeout=timeout)
        if not done:
            return None, answered - started
        return max(self.arrived[k] for k in wanted) - started, answered - started

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        self._connection.release()


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


PARTS = ("read", "orders", "billing_run", "dns_changesets")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved product/anchor rounds")
    parser.add_argument("--orders", type=int, default=20, help="orders timed per round")
    parser.add_argument("--contracts", type=int, default=100_000, help="due contracts of the billing run")
    parser.add_argument("--only", action="append", choices=PARTS, default=[],
                        help="run only this part (repeatable)")
    parser.add_argument("--skip", action="append", choices=PARTS, default=[],
                        help="leave this part out (repeatable)")
    parser.add_argument("--write", action="store_true", help="append the table to docs/performance.md")
    args = parser.parse_args(argv)
    parts = [p for p in (args.only or PARTS) if p not in args.skip]
    if "read" in parts and shutil.which("wrk") is None:
        print("bench: needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    rows = []
    if "read" in parts or "orders" in parts:
        rows += system_rows(args, parts)
    # Parts with their own set-up: fresh databases, the domain/run code called directly.
    if "billing_run" in parts:
        from billing_run import rows as billing_run_rows
        rows += billing_run_rows(args.contracts)
    if "dns_changesets" in parts:
        from dns_changesets import rows as dns_changesets_rows
        for database in ("sqlite", "postgresql"):
            rows += dns_changesets_rows(database)

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [f"### Run of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
             "",
             f"Machine: {os.cpu_count()} cores, load average {load} (1/5/15 min) at the end; "
             f"parts: {', '.join(parts)}; {args.rounds} interleaved rounds of {args.seconds} s "
             f"(medians); the system on SQLite databases; product `GET /api/v1/me/contracts` (demo customer), "
             "anchor bench/anchor.py; orders: `POST /api/v1/me/orders` of one new .de domain, "
             f"{args.orders} per round, until billing's invoice_issued and dns's zone_changed "
             "arrive (bench.OrderWatch); billing run: bench/billing_run.py on PostgreSQL "
             f"({args.contracts} due contracts); DNS change sets: bench/dns_changesets.py.",
             "",
             "| figure | product | anchor | ratio | target | |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = ROOT / "docs" / "performance.md"
        with path.open("a") as fh:
            fh.write("\n" + text)
    return 0


def system_rows(args, parts):
    """The figures measured on the started system: the authenticated read (with anchors),
    /products, /health, and order → booking and zone."""
    bench = Bench()
    runs = {k: [] for k in ("p64", "a64", "p1", "a1", "products1", "account1", "health64")}
    orders, answers, lost = [], [], 0
    try:
        bench.start()
        base = f"http://127.0.0.1:{bench.port}"
        token = requests.post(base + "/api/v1/session", json=DEMO, timeout=10).json()["token"]
        auth = (f"Authorization: Bearer {token}",)
        watch = OrderWatch(bench.env["AMQP_URI"], base, {"Authorization": f"Bearer {token}"}) \
            if "orders" in parts else None
        product, anchor = base + "/api/v1/me/contracts", f"http://127.0.0.1:{bench.anchor_port}/anchor"
        try:
            if watch is not None:
                watch.place()  # warm: the first order pays for connections and caches
            for _ in range(args.rounds):  # interleaved: the machine's noise hits both alike
                if "read" in parts:
                    runs["p64"].append(bench.measure(product, clients=64, seconds=args.seconds, headers=auth))
                    runs["a64"].append(bench.measure(anchor, clients=64, seconds=args.seconds))
                    runs["p1"].append(bench.measure(product, clients=1, seconds=args.seconds // 2, headers=auth))
                    runs["a1"].append(bench.measure(anchor, clients=1, seconds=args.seconds // 2))
                    runs["products1"].append(bench.measure(base + "/api/v1/products", clients=1,
                                                           seconds=args.seconds // 2))
                    runs["account1"].append(bench.measure(base + "/api/v1/me/account", clients=1,
                                                          seconds=args.seconds // 2, headers=auth))
                if watch is not None:
                    for _ in range(args.orders):
                        took, answered = watch.place()
                        answers.append(answered)
                        if took is None:
                            lost += 1
                        else:
                            orders.append(took)
            if "read" in parts:
                runs["health64"].append(bench.measure(base + "/health", clients=64, seconds=args.seconds))
        finally:
            if watch is not None:
                watch.close()
    finally:
        bench.stop()

    def fig(key, field):
        return median([r[field] for r in runs[key]])

    rows = []

    def row(figure, product_value, anchor_value, target, met_if, unit=""):
        ratio = product_value / anchor_value if anchor_value else float("inf")
        rows.append((figure, f"{product_value:.2f}{unit}", f"{anchor_value:.2f}{unit}", f"{ratio:.2f}",
                     target, "met" if met_if(ratio) else "not met"))

    if "read" in parts:
        row("authenticated read: CPU per request, all processes + broker (64 clients)",
            fig("p64", "cpu_ms"), fig("a64", "cpu_ms"), "≤ 1.2 × anchor", lambda r: r <= 1.2, " ms")
        row("authenticated read: CPU per request, our processes only (64 clients)",
            fig("p64", "cpu_own_ms"), fig("a64", "cpu_own_ms"), "(broker is shared: noise)",
            lambda r: r <= 1.2, " ms")
        row("authenticated read: throughput at 64 clients", fig("p64", "rps"), fig("a64", "rps"),
            "≥ 0.8 × anchor", lambda r: r >= 0.8, " req/s")
        row("authenticated read: p50 at 1 client", fig("p1", "p50_ms"), fig("a1", "p50_ms"),
            "≤ 1.5 × anchor", lambda r: r <= 1.5, " ms")
        errors = sum(r["errors"] for k in ("p64", "p1", "account1", "products1") for r in runs[k])
        rows.append(("authenticated read + /products: errors", str(errors), "0", "", "0",
                     "met" if errors == 0 else "not met"))
        row("/products (23 KB) vs /me/account: throughput at 1 client", fig("products1", "rps"),
            fig("account1", "rps"), "≥ 0.8 ×", lambda r: r >= 0.8, " req/s")
        health = runs["health64"][0]
        rows.append(("/health at 64 clients: errors or 503 (degraded)", str(health["errors"]), "0", "",
                     "0", "met" if health["errors"] == 0 else "not met"))
        rows.append(("/health at 64 clients: throughput", f"{health['rps']:.0f} req/s", "", "", "", ""))
    if "orders" in parts:
        if orders:
            p50 = median(orders) * 1000
            # Anchor column: the order's own answer (201) in the same runs: what the events add.
            rows.append(("order → RE booking visible and zone created: p50 (anchor: the order's 201)",
                         f"{p50:.1f} ms", f"{median(answers) * 1000:.1f} ms", "",
                         "≤ 25 ms", "met" if p50 <= 25 and not lost else "not met"))
            rows.append(("order → booking and zone: p90", f"{percentile(orders, 0.9) * 1000:.1f} ms",
                         f"{percentile(answers, 0.9) * 1000:.1f} ms", "", "", ""))
        rows.append(("order → booking and zone: not seen within 10 s", str(lost), "", "", "0",
                     "met" if lost == 0 else "not met"))
    return rows


if __name__ == "__main__":
    sys.exit(main())

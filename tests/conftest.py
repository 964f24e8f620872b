"""End-to-end fixtures: the whole system as real processes, as `make run` starts it.

Every process of deploy/Procfile runs with the test run's own vhost and
PostgreSQL databases (never the data of `make run`) and the gateway on a free
port; the demo data is seeded the same way `make run` seeds it.
"""
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["identity", "catalog", "billing", "dns", "documents", "support"]
SUPPORT_INBOUND_SECRET = "e2e-inbound-secret"  # switches support's inbound-mail webhook on


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile():
    for line in (ROOT / "deploy" / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            yield name.strip(), command.strip()


class System:
    def __init__(self, url, env, logs):
        self.url, self.env, self.logs = url, env, logs
        self.processes = {}

    def start(self):
        # As honcho does: each Procfile line through the shell (${VAR:-default}), venv first on PATH.
        env = dict(self.env, PATH=f"{Path(sys.executable).parent}:{self.env.get('PATH', '')}")
        for name, command in procfile():
            log = open(self.logs / f"{name}.log", "w")
            self.processes[name] = (subprocess.Popen(["bash", "-c", "exec " + command], cwd=ROOT,
                                                     env=env, stdout=log, stderr=subprocess.STDOUT), log)

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, (proc, _) in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("system not healthy in time:\n" + "\n".join(
            f"--- {n}\n{self.log(n)[-1500:]}" for n in self.processes))

    def mails(self, to=None):
        """Every message the system's real SMTP server (the `mail` process) received."""
        from email import message_from_bytes, policy
        found = []
        for path in sorted(Path(self.env["MAIL_DIR"]).glob("*.eml")):
            msg = message_from_bytes(path.read_bytes(), policy=policy.default)
            if to is None or to in str(msg["To"]):
                found.append(msg)
        return found

    def log(self, name):
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self):
        for proc, _ in self.processes.values():
            proc.terminate()
        for proc, log in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def run(argv, env):
    subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def system(rabbit_manager, request, database_factory, tmp_path_factory):
    amqp = request.config.getoption("RABBIT_AMQP_URI").rstrip("/")
    vhost = f"kct_e2e_{uuid.uuid4().hex[:8]}"
    rabbit_manager.create_vhost(vhost)
    rabbit_manager.set_vhost_permissions(vhost, "guest", ".*", ".*", ".*")
    port, web_port = free_port(), free_port()
    mail_dir = tmp_path_factory.mktemp("mail")
    env = dict(os.environ, AMQP_URI=f"{amqp}/{vhost}", GATEWAY_ADDRESS=f"127.0.0.1:{port}",
               # the web front end (deploy/Procfile `web`), and the PSP sending customers back to it
               WEB_ADDRESS=f"127.0.0.1:{web_port}", PSP_RETURN_URL=f"http://127.0.0.1:{web_port}/zahlung",
               RPC_TIMEOUT="5", PYTHONWARNINGS="ignore", SMTP_PORT=str(free_port()),
               MAIL_DIR=str(mail_dir), SUPPORT_INBOUND_SECRET=SUPPORT_INBOUND_SECRET,
               SUPPORT_ATTACHMENT_DIR=str(tmp_path_factory.mktemp("support-attachments")),
               PSP_PORT=str(free_port()),
               # Every e2e request comes from 127.0.0.1: the suites must not share one
               # per-address login budget (identity's interface tests cover that limit).
               LOGIN_MAX_FAILURES_PER_ADDRESS="1000")
    for svc in SERVICES:
        env[f"{svc.upper()}_DATABASE_URL"] = database_factory(f"kc_{svc}", fresh=True)
    for svc in SERVICES:
        run(["-m", "kc_common.manage", f"services/{svc}/config.yaml", "seed"], env)
    run(["-m", "kc_common.topology", "--services", "deploy/services.txt"], env)
    system = System(f"http://127.0.0.1:{port}", env, tmp_path_factory.mktemp("logs"))
    system.web_url = f"http://127.0.0.1:{web_port}"
    system.start()
    try:
        system.wait_healthy()
        yield system
    finally:
        system.stop()
        rabbit_manager.delete_vhost(vhost)


DEMO = {"login": "demo@kundencenter.example", "password": "Demo-Passwort-2026"}


def login(system, creds=DEMO, path="/api/v1/session"):
    """Authorization headers for a fresh session (customer, or staff with the staff path)."""
    resp = requests.post(system.url + path, json=creds)
    assert resp.status_code == 201, resp.text
    return {"Authorization": "Bearer " + resp.json()["token"]}


@pytest.fixture(scope="session")
def demo_headers(system):
    return login(system)


@pytest.fixture(scope="session")
def make_customer(system):
    """Create another customer (directly in identity's test database) and log them in.

    Returns ``(customer_id, headers)``. Test setup only: services never do this.
    """
    from kc_common.db import StandaloneDatabase
    from kc_identity import domain
    from kc_identity.models import metadata

    def make(email=None, password="Kunden-Passwort-2026", **fields):
        email = email or f"kunde-{uuid.uuid4().hex[:8]}@example.org"
        db = StandaloneDatabase(metadata, system.env["IDENTITY_DATABASE_URL"], "identity")
        with db.unit_of_work() as uow:
            customer_id = domain.create_customer(
                uow, email=email, password=password,
                last_name=fields.get("last_name", "Musterfrau"),
                first_name=fields.get("first_name", "Erika"), company=fields.get("company", ""))
        db.engine.dispose()
        return customer_id, login(system, {"login": email, "password": password})
    return make


@pytest.fixture(scope="session")
def staff_headers(system):
    """``staff_headers("support")`` -> headers of the demo staff member with that role."""
    from kc_identity.demo import STAFF, STAFF_PASSWORD

    def make(role="admin"):
        email = next(e for e, _, roles in STAFF if role in roles)
        return login(system, {"login": email, "password": STAFF_PASSWORD}, path="/api/v1/staff/session")
    return make

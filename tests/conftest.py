"""End-to-end fixtures: the whole system as real processes, as `make run` starts it.

Every process of deploy/Procfile runs with the test run's own vhost and
PostgreSQL databases (never the data of `make run`) and the gateway on a free
port; the demo data is seeded the same way `make run` seeds it.

``system`` (session) starts the processes directly, so a process that exits
fails the run; ``supervised_system`` (per module that asks for it) runs them
under supervisord with the configuration `make run` generates, for tests that
kill or freeze processes.
"""
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import xmlrpc.client
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from kc_common.services import SERVICES

ROOT = Path(__file__).resolve().parents[1]
SUPPORT_INBOUND_SECRET = "e2e-inbound-secret"  # switches support's inbound-mail webhook on


def _deploy_module(name):
    """A module of deploy/ (scripts, not an installed package)."""
    if f"kc_deploy_{name}" not in sys.modules:
        spec = importlib.util.spec_from_file_location(f"kc_deploy_{name}", ROOT / "deploy" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[f"kc_deploy_{name}"]


supervisord_conf = _deploy_module("supervisord_conf")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile():
    """``(name, command)`` of every program of deploy/Procfile (the one list of programs)."""
    return supervisord_conf.procfile()


def venv_env(env):
    """``env`` with this interpreter's directory (the venv) first on PATH, as deploy/run.sh does."""
    return dict(env, PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")


class System:
    """Every Procfile process, started directly; one that exits is an error."""

    def __init__(self, url, env, logs):
        self.url, self.env, self.logs = url, env, logs
        self.processes = {}

    def start(self):
        # As deploy/run.sh does: each Procfile line through the shell (${VAR:-default}).
        for name, command in procfile():
            log = open(self.logs / f"{name}.log", "w")
            self.processes[name] = (subprocess.Popen(["bash", "-c", "exec " + command], cwd=ROOT,
                                                     env=venv_env(self.env), stdout=log,
                                                     stderr=subprocess.STDOUT), log)

    def check_running(self):
        for name, (proc, _) in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def names(self):
        return [name for name, _ in procfile()]

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("system not healthy in time:\n" + "\n".join(
            f"--- {n}\n{self.log(n)[-1500:]}" for n in self.names()))

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


class Supervisor:
    """supervisord in the foreground with a configuration from deploy/supervisord_conf.py."""

    def __init__(self, run_dir, env, procfile_path=supervisord_conf.PROCFILE, **options):
        self.run_dir, self.env = Path(run_dir), env
        self.conf = supervisord_conf.write(run_dir, procfile_path, **options)
        self.output_path = self.run_dir / "supervisord.out"
        self.proc = None

    def start(self):
        # Append mode: the console listener's lines reach this file through a second
        # open of supervisord's /dev/stdout (see deploy/run.sh).
        self._output = open(self.output_path, "ab")
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "supervisord"), "-n", "-c",
                                      str(self.conf)], cwd=ROOT, env=venv_env(self.env),
                                     stdout=self._output, stderr=subprocess.STDOUT)
        from kc_common.testing import wait_for
        wait_for(lambda: self._answers(), timeout=20, message="supervisord's control socket")

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"supervisord exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return self.rpc().supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def rpc(self):
        """supervisord's XML-RPC interface (what supervisorctl uses), over its unix socket."""
        from supervisor.xmlrpc import SupervisorTransport
        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", SupervisorTransport(None, None, f"unix://{self.run_dir.resolve()}/supervisor.sock"))

    def info(self, name):
        """supervisord's view of program ``name``: ``statename``, ``pid``, ..."""
        return self.rpc().supervisor.getProcessInfo(f"{supervisord_conf.GROUP}:{name}")

    def pids(self):
        """Program name -> pid of every program that has a process now."""
        return {i["name"]: i["pid"] for i in self.rpc().supervisor.getAllProcessInfo()
                if i["group"] == supervisord_conf.GROUP and i["pid"]}

    def output(self):
        """What supervisord printed (its own log lines and every program's, name-prefixed)."""
        return self.output_path.read_text(errors="replace")

    def interrupt(self, timeout=30):
        """Ctrl-C: SIGINT to supervisord, which stops every program; its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc and self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        finally:
            self._output.close()


class SupervisedSystem(System):
    """Every Procfile process under supervisord, configured as `make run` configures it."""

    def __init__(self, url, env, logs):
        super().__init__(url, env, logs)
        self.supervisor = Supervisor(logs, env)

    def start(self):
        self.supervisor.start()

    def check_running(self):
        self.supervisor._answers()

    def log(self, name):
        path = self.logs / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        self.supervisor.interrupt()


def run(argv, env):
    subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def sqlite_url(directory, service):
    """The embedded default's URL for ``service`` (as config.yaml's ``sqlite:///var/<svc>.db``)."""
    return f"sqlite:///{Path(directory).resolve() / f'{service}.db'}"


@contextmanager
def running_system(kind, request, *, database="postgresql", broker_proxy=None, database_proxies=None,
                   broker_uri=None, **env_overrides):
    """A whole healthy system of class ``kind`` with its own vhost, databases and ports.

    ``database``: "postgresql" (a fresh database per service, as in production) or "sqlite"
    (the embedded default of `make run`: a file per service in a directory of the test,
    migrated and seeded as deploy/run.sh does). ``broker_proxy``: a started
    :class:`kc_common.testing.TcpProxy` in front of RabbitMQ; every process talks to the
    broker through it (the test, the topology and the seeds go direct), so the test can
    cut the broker off. ``database_proxies``: ``{service: TcpProxy}`` in front of
    PostgreSQL for that service's processes. ``broker_uri``: a broker of the test's own
    (tests/rabbit_cluster.py: every node, ``amqp://a;amqp://b;...``), used as it is, with its
    default vhost, instead of a fresh vhost of the machine's broker, with quorum queues (the
    machine's broker gets classic ones: ``QUEUE_TYPE``). The system knows
    ``vhost``, ``amqp_uri`` (direct) and ``database_urls`` (direct).
    """
    assert database in ("postgresql", "sqlite"), database
    rabbit_manager = request.getfixturevalue("rabbit_manager")
    tmp_path_factory = request.getfixturevalue("tmp_path_factory")
    amqp = request.config.getoption("RABBIT_AMQP_URI").rstrip("/")
    vhost = "/" if broker_uri else f"kct_e2e_{uuid.uuid4().hex[:8]}"
    if not broker_uri:
        rabbit_manager.create_vhost(vhost)
        rabbit_manager.set_vhost_permissions(vhost, "guest", ".*", ".*", ".*")
    try:
        port, web_port = free_port(), free_port()
        mail_dir = tmp_path_factory.mktemp("mail")
        amqp_uri = broker_uri or f"{amqp}/{vhost}"
        env = dict(os.environ, AMQP_URI=amqp_uri, GATEWAY_ADDRESS=f"127.0.0.1:{port}",
                   # the web front end (deploy/Procfile `web`), and the PSP sending customers back to it
                   WEB_ADDRESS=f"127.0.0.1:{web_port}",
                   PSP_RETURN_URL=f"http://127.0.0.1:{web_port}/zahlung",
                   RPC_TIMEOUT="5", PYTHONWARNINGS="ignore", SMTP_PORT=str(free_port()),
                   MAIL_DIR=str(mail_dir), SUPPORT_INBOUND_SECRET=SUPPORT_INBOUND_SECRET,
                   SUPPORT_ATTACHMENT_DIR=str(tmp_path_factory.mktemp("support-attachments")),
                   PSP_PORT=str(free_port()),
                   # Every e2e request comes from 127.0.0.1: the suites must not share one
                   # per-address login budget (identity's interface tests cover that limit).
                   LOGIN_MAX_FAILURES_PER_ADDRESS="1000",
                   # As deploy/run.sh: the gateway trusts X-Forwarded-For from the local web front
                   # end, so a test can act from a client address of its own (customer_maker signs
                   # every customer up from its own address: the per-address sign-up limit holds).
                   TRUSTED_PROXIES="127.0.0.1/32",
                   # Classic queues on the machine's broker: the suite starts many short-lived
                   # systems (a quorum queue is a Raft group each: ~180 per system made a
                   # 2-core machine time out). The cluster test runs the production kind,
                   # libs/kc_common/tests/test_topology.py the declarations of both.
                   QUEUE_TYPE="quorum" if broker_uri else "classic")
        env.update(env_overrides)  # may override the defaults above (e.g. RPC_TIMEOUT)
        # Each process its own free metrics port (the defaults would collide between runs).
        for name in [*SERVICES, "gateway", "web"]:
            env.setdefault(f"{name.upper()}_METRICS_ADDRESS", f"127.0.0.1:{free_port()}")
        database_urls = {}
        if database == "sqlite":
            db_dir = tmp_path_factory.mktemp("sqlite")
            for svc in SERVICES:
                database_urls[svc] = env[f"{svc.upper()}_DATABASE_URL"] = sqlite_url(db_dir, svc)
        else:
            database_factory = request.getfixturevalue("database_factory")
            for svc in SERVICES:
                database_urls[svc] = env[f"{svc.upper()}_DATABASE_URL"] = database_factory(
                    f"kc_{svc}", fresh=True)
        for svc in SERVICES:
            if database == "sqlite":
                run(["-m", "kc_common.manage", f"services/{svc}/config.yaml", "migrate"], env)
            run(["-m", "kc_common.manage", f"services/{svc}/config.yaml", "seed"], env)
        run(["-m", "kc_common.topology"], env)
        # What the processes use (through the proxies, if any); the test itself goes direct.
        if broker_proxy is not None:
            env["AMQP_URI"] = broker_proxy.url_for(amqp_uri)
        for svc, proxy in (database_proxies or {}).items():
            assert database == "postgresql", "database proxies are for PostgreSQL"
            env[f"{svc.upper()}_DATABASE_URL"] = proxy.url_for(database_urls[svc])
        system = kind(f"http://127.0.0.1:{port}", env, tmp_path_factory.mktemp("logs"))
        system.web_url = f"http://127.0.0.1:{web_port}"
        system.vhost, system.amqp_uri, system.database_urls = vhost, amqp_uri, database_urls
        system.database = database
        system.start()
        try:
            system.wait_healthy()
            yield system
        finally:
            system.stop()
    finally:
        if not broker_uri:
            rabbit_manager.delete_vhost(vhost)


@pytest.fixture(scope="session")
def system(request):
    with running_system(System, request) as system:
        yield system


@pytest.fixture(scope="module")
def supervised_system(request):
    """A second, separate system under supervisord (``HEALTH_TIMEOUT`` 3 s), for killing processes."""
    with running_system(SupervisedSystem, request, HEALTH_TIMEOUT="3") as system:
        yield system


DEMO = {"login": "demo@kundencenter.example", "password": "Hafen-Leuchtturm-2026"}


def login(system, creds=DEMO, path="/api/v1/session"):
    """Authorization headers for a fresh session (customer, or staff with the staff path)."""
    resp = requests.post(system.url + path, json=creds)
    assert resp.status_code == 201, resp.text
    return {"Authorization": "Bearer " + resp.json()["token"]}


@pytest.fixture(scope="session")
def demo_headers(system):
    return login(system)


SIGNUP_ADDRESS = {"street": "Teststraße 1", "zip": "30159", "city": "Hannover", "country": "DE",
                  "phone": "+49 511 1234567"}


def mail_link_token(system, to, subject, timeout=30):
    """The token of the link in the newest mail to ``to`` with ``subject`` (waits for it)."""
    import re
    from email import message_from_bytes, policy

    from kc_common.testing import wait_for

    def find():
        for path in sorted(Path(system.env["MAIL_DIR"]).glob("*.eml"), reverse=True):
            raw = path.read_bytes()
            if to.encode() not in raw:
                continue
            msg = message_from_bytes(raw, policy=policy.default)
            if to in str(msg["To"]) and msg["Subject"] == subject:
                return re.search(r"token=([A-Za-z0-9_-]+)", msg.get_content()).group(1)
        return None
    return wait_for(find, timeout=timeout, message=f"the mail {subject!r} to {to}")


def customer_maker(system):
    """``make(email=None, password=..., **fields) -> (customer_id, headers)`` for ``system``:
    a customer signed up through the public API (each from a client address of its own),
    verified by the link in the real mail, and logged in. ``fields``: address fields
    (a ``company`` makes it a company)."""
    terms = {}

    def make(email=None, password="Kunden-Passwort-2026", **fields):
        email = email or f"kunde-{uuid.uuid4().hex[:8]}@example.org"
        if not terms:
            resp = requests.get(system.url + "/api/v1/signup/terms", timeout=30)
            assert resp.status_code == 200, resp.text
            terms.update(resp.json())
        body = dict(SIGNUP_ADDRESS, customer_type="company" if fields.get("company") else "private",
                    last_name="Musterfrau", first_name="Erika", email=email, password=password,
                    password_repeat=password, accept_terms=True, terms_version=terms["version"])
        body.update(fields)
        address = "10.{}.{}.{}".format(*uuid.uuid4().bytes[:3])
        resp = requests.post(system.url + "/api/v1/signup", json=body, headers={"X-Forwarded-For": address},
                             timeout=30)
        assert resp.status_code == 202, resp.text
        token = mail_link_token(system, email, "Bitte bestätigen Sie Ihre E-Mail-Adresse")
        resp = requests.post(system.url + "/api/v1/email-confirmations", json={"token": token}, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()["customer_id"], login(system, {"login": email, "password": password})
    return make


def staff_login(system, role="admin"):
    """Headers of the demo staff member with ``role``, freshly logged in to ``system``."""
    from kc_identity.demo import STAFF, STAFF_PASSWORD
    email = next(e for e, _, roles in STAFF if role in roles)
    return login(system, {"login": email, "password": STAFF_PASSWORD}, path="/api/v1/staff/session")


@pytest.fixture(scope="session")
def make_customer(system):
    """Sign up another customer through the public API (verified by the mailed link) and log
    them in. Returns ``(customer_id, headers)``."""
    return customer_maker(system)


@pytest.fixture(scope="session")
def staff_headers(system):
    """``staff_headers("support")`` -> headers of the demo staff member with that role."""
    return lambda role="admin": staff_login(system, role)

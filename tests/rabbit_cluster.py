"""A throw-away 3-node RabbitMQ cluster on this machine, for the cluster test.

Each node has its own name, AMQP and distribution ports, data and log directories
and an empty plugin list; they share an Erlang cookie in a temporary HOME and are
joined with ``rabbitmqctl join_cluster``. Uses the installed RabbitMQ scripts
(``/usr/lib/rabbitmq/bin``), not the machine's broker (which is left alone).
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

RABBIT_BIN = os.environ.get("KC_RABBIT_BIN", "/usr/lib/rabbitmq/bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return os.path.exists(os.path.join(RABBIT_BIN, "rabbitmq-server"))


class Node:
    def __init__(self, base, index):
        self.index = index
        self.name = f"kcq{index}_{os.getpid()}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = os.path.join(base, f"n{index}")
        os.makedirs(os.path.join(self.dir, "log"))
        self.conf = os.path.join(self.dir, "rabbitmq.conf")
        with open(self.conf, "w") as fh:
            fh.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
                     "loopback_users = none\n")
        self.process = None

    @property
    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}"


class RabbitCluster:
    def __init__(self, size=3):
        self.base = tempfile.mkdtemp(prefix="kc-rabbit-")
        self.home = os.path.join(self.base, "home")
        os.makedirs(self.home)
        cookie = os.path.join(self.home, ".erlang.cookie")
        with open(cookie, "w") as fh:
            fh.write(secrets.token_hex(16).upper())
        os.chmod(cookie, 0o400)
        empty = os.path.join(self.base, "empty.conf")
        open(empty, "w").close()
        self.plugins = os.path.join(self.base, "enabled_plugins")
        with open(self.plugins, "w") as fh:
            fh.write("[].\n")
        self.env_file = empty
        self.nodes = [Node(self.base, i) for i in range(size)]

    def env(self, node):
        return dict(
            os.environ, HOME=self.home, RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(node.port),
            RABBITMQ_DIST_PORT=str(node.dist_port), RABBITMQ_CONFIG_FILE=node.conf,
            RABBITMQ_CONF_ENV_FILE=self.env_file, RABBITMQ_ENABLED_PLUGINS_FILE=self.plugins,
            RABBITMQ_MNESIA_BASE=os.path.join(node.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(node.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(node.dir, "pid"),
            ERL_EPMD_ADDRESS="127.0.0.1")

    def ctl(self, node, *args, timeout=60):
        return subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", node.name, *args],
                              env=self.env(node), capture_output=True, text=True,
                              timeout=timeout, check=True).stdout

    def spawn(self, node):
        log = open(os.path.join(node.dir, "log", "stdout.log"), "ab")
        node.process = subprocess.Popen([os.path.join(RABBIT_BIN, "rabbitmq-server")],
                                        env=self.env(node), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait(self, node):
        self.ctl(node, "wait", "--timeout", "180", os.path.join(node.dir, "pid"), timeout=200)

    def start(self):
        for node in self.nodes:  # in parallel: a node takes tens of seconds on a busy machine
            self.spawn(node)
        for node in self.nodes:
            self.wait(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        return self

    @property
    def amqp_uri(self):
        """Every node, kombu's failover syntax: ``amqp://a;amqp://b;amqp://c``."""
        return ";".join(node.uri for node in self.nodes)

    def node_named(self, name):
        return next(node for node in self.nodes if node.name == name)

    def stop_node(self, node):
        """Stop one node as a crash would: SIGKILL to its whole process group (the Erlang VM
        and its helpers; epmd runs on its own). Returns the seconds it took."""
        started = time.monotonic()
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=60)
        node.process = None
        return time.monotonic() - started

    def leader_of(self, queue, vhost="/"):
        """The node leading quorum queue ``queue`` (its Raft leader)."""
        node = self.running()[0]
        out = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmq-queues"), "-n", node.name,
                              "quorum_status", queue, "--vhost", vhost, "--formatter", "json"],
                             env=self.env(node), capture_output=True, text=True, timeout=120,
                             check=True).stdout
        members = json.loads(out)
        return next(m["Node Name"] for m in members if m["Raft State"] == "leader")

    def running(self):
        return [node for node in self.nodes if node.process is not None]

    def close(self):
        for node in self.running():  # throw-away data: no graceful stop needed
            try:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            node.process = None
        shutil.rmtree(self.base, ignore_errors=True)

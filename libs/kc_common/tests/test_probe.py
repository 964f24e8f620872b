"""kc_common.probe: the readiness check of the Kubernetes manifests, on a real broker and databases."""
import os
import socket
import subprocess
import sys
import time

import yaml
from alembic import command

from kc_common import probe
from kc_common.manage import main as manage
from kc_common.migrations import alembic_config

PACKAGE = "kc_dns"  # any service: the probe only reads its migrations


def write_config(tmp_path, amqp_uri, database_url=None, name="config.yaml"):
    config = {"SERVICE_NAME": "dns", "SERVICE_PACKAGE": PACKAGE, "AMQP_URI": amqp_uri}
    if database_url:
        config["DATABASE_URL"] = database_url
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed


def test_ready_when_broker_answers_and_postgres_is_at_head(tmp_path, rabbit_config, database_factory, capsys):
    config = write_config(tmp_path, rabbit_config["AMQP_URI"], database_factory(PACKAGE, fresh=True))
    assert probe.main(["ready", config]) == 0
    assert capsys.readouterr().err == ""


def test_not_ready_before_and_after_the_migrations_move(tmp_path, rabbit_config, empty_database, capsys):
    url = empty_database()
    config = write_config(tmp_path, rabbit_config["AMQP_URI"], url)
    assert probe.main(["ready", config]) == 1
    err = capsys.readouterr().err
    assert "dns not ready: database at migration None, code expects" in err
    assert "run the migration Job" in err
    assert manage([config, "migrate"]) == 0
    assert probe.main(["ready", config]) == 0
    # One migration behind (an old pod after the new version migrated is the mirror image).
    command.downgrade(alembic_config(PACKAGE, url), "-1")
    assert probe.main(["ready", config]) == 1
    assert "code expects" in capsys.readouterr().err


def test_ready_on_sqlite_too(tmp_path, rabbit_config):
    config = write_config(tmp_path, rabbit_config["AMQP_URI"], f"sqlite:///{tmp_path / 'dns.db'}")
    assert manage([config, "migrate"]) == 0
    assert probe.main(["ready", config]) == 0


def test_not_ready_without_broker_and_says_why_quickly(tmp_path, database_factory, capsys):
    config = write_config(tmp_path, f"pyamqp://guest:guest@127.0.0.1:{closed_port()}/",
                          database_factory(PACKAGE, fresh=True))
    started = time.monotonic()
    assert probe.main(["ready", config, "--timeout", "2"]) == 1
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "dns not ready: broker not reachable" in err
    assert "database" not in err  # the database is fine: only the broker is named


def test_gateway_has_no_database_to_check(tmp_path, rabbit_config):
    config = write_config(tmp_path, rabbit_config["AMQP_URI"])
    assert probe.ready(probe.load_config(config)) == []


def test_command_line_exit_codes(tmp_path, rabbit_config, empty_database):
    """As the kubelet runs it: `python -m kc_common.probe ready CONFIG`, exit code and stderr."""
    ok = write_config(tmp_path, rabbit_config["AMQP_URI"], f"sqlite:///{tmp_path / 'ok.db'}", "ok.yaml")
    assert manage([ok, "migrate"]) == 0
    bad = write_config(tmp_path, rabbit_config["AMQP_URI"], empty_database(), "bad.yaml")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run = [sys.executable, "-m", "kc_common.probe", "ready"]
    done = subprocess.run(run + [ok], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(run + [bad], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert "not ready: database at migration None" in done.stderr

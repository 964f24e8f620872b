"""`make run`'s process supervision, on a small Procfile of dummy programs.

The configuration comes from deploy/supervisord_conf.py exactly as for `make
run` (only startsecs/startretries are shorter, to keep the test quick): a
killed program is started again while the others keep their processes, a
program that keeps crashing is retried with growing pauses and then given up,
every program's output reaches supervisord's stdout with its name, and Ctrl-C
(SIGINT) stops everything.
"""
import os
import re
import signal
from datetime import datetime

import pytest

from kc_common.testing import wait_for
from tests.conftest import Supervisor, supervisord_conf

pytestmark = pytest.mark.slow  # supervisord and its programs: seconds each (not in `make test-unit`)

# Program lines as in deploy/Procfile: a shell command each (python is the venv's).
PROCFILE = """\
# dummy programs
steady: python -u -c "import time; print('steady läuft'); time.sleep(600)"
other: python -u -c "import sys, time; sys.stdout.write('halbe '); sys.stdout.flush(); time.sleep(0.5); print('Zeile'); time.sleep(600)"
crasher: python -u -c "import sys; print('crasher: kaputt'); sys.exit(1)"
"""
START_SECS, START_RETRIES = 1, 3


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def running(sup, name):
    info = sup.info(name)
    return info["pid"] if info["statename"] == "RUNNING" else None


@pytest.fixture
def make_supervisor(tmp_path):
    started = []

    def make():
        procfile = tmp_path / "Procfile"
        procfile.write_text(PROCFILE)
        sup = Supervisor(tmp_path / "run", dict(os.environ, PYTHONWARNINGS="ignore"), procfile,
                         startsecs=START_SECS, startretries=START_RETRIES)
        sup.start()
        started.append(sup)
        return sup

    yield make
    for sup in started:
        sup.interrupt()


def test_the_configuration_has_every_procfile_program(tmp_path):
    conf = supervisord_conf.write(tmp_path)
    text = conf.read_text()
    names = [name for name, _ in supervisord_conf.procfile()]
    assert {"identity", "catalog", "billing", "dns", "documents", "support", "gateway", "mail", "psp"} <= set(names)
    for name in names:
        assert f"[program:{name}]" in text
    assert re.search(rf"^programs={','.join(names)}$", text, re.M)
    # ${VAR:-default} survives for bash; a literal % is escaped for supervisord.
    assert "exec python -m kc_common.mailsink --port ${SMTP_PORT:-8025}" in text
    assert "%" not in text.replace("%%", "")


def test_a_killed_program_is_started_again_and_the_others_keep_running(make_supervisor):
    sup = make_supervisor()
    steady = wait_for(lambda: running(sup, "steady"), timeout=15, message="steady RUNNING")
    other = wait_for(lambda: running(sup, "other"), timeout=15, message="other RUNNING")

    os.kill(steady, signal.SIGKILL)

    new = wait_for(lambda: (pid := running(sup, "steady")) and pid != steady and pid,
                   timeout=15, message="steady started again")
    assert new != steady and not alive(steady)
    assert alive(new)
    assert running(sup, "other") == other
    assert sup.proc.poll() is None
    assert "exited: steady (terminated by SIGKILL; not expected)" in sup.output()


def test_a_crash_loop_backs_off_then_gives_up_while_the_others_run(make_supervisor):
    sup = make_supervisor()
    steady = wait_for(lambda: running(sup, "steady"), timeout=15, message="steady RUNNING")

    # 1 + START_RETRIES attempts with 1 + 2 + 3 s of backoff between them.
    wait_for(lambda: sup.info("crasher")["statename"] == "FATAL", timeout=30, message="crasher FATAL")

    spawns = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in
              re.findall(r"^(\S+ \S+) INFO spawned: 'crasher'", sup.output(), re.M)]
    assert len(spawns) == 1 + START_RETRIES
    gaps = [(b - a).total_seconds() for a, b in zip(spawns, spawns[1:])]
    # The n-th retry waits n seconds (supervisord checks once a second, so up to ~1 s later).
    for n, gap in enumerate(gaps, start=1):
        assert n <= gap < n + 2, gaps
    assert "gave up: crasher entered FATAL state" in sup.output()
    assert running(sup, "steady") == steady


def test_output_reaches_the_console_line_by_line_with_the_program_name(make_supervisor):
    sup = make_supervisor()
    wait_for(lambda: "Zeile" in sup.output(), timeout=15, message="other's line on the console")
    lines = sup.output().splitlines()
    width = max(len("console"), *(len(n) for n in ("steady", "other", "crasher")))
    assert f"{'steady':<{width}} | steady läuft" in lines
    # Written in two pieces half a second apart: still one line.
    assert f"{'other':<{width}} | halbe Zeile" in lines
    assert f"{'crasher':<{width}} | crasher: kaputt" in lines
    # And in the program's own log file.
    assert (sup.run_dir / "log" / "steady.log").read_text() == "steady läuft\n"


def test_ctrl_c_stops_every_program(make_supervisor):
    sup = make_supervisor()
    wait_for(lambda: running(sup, "steady") and running(sup, "other"), timeout=15,
             message="steady and other RUNNING")
    pids = [i["pid"] for i in sup.rpc().supervisor.getAllProcessInfo() if i["pid"]]
    assert len(pids) >= 3  # steady, other and the console listener

    assert sup.interrupt(timeout=20) == 0

    assert [pid for pid in pids if alive(pid)] == []

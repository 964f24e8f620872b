"""Rendering in worker processes leaves the service's event loop free; a dead worker is replaced;
large jobs and results never deadlock; a job over the time limit has its worker killed."""
import json
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import eventlet
import pytest

from kc_common.errors import ServiceUnavailable
from kc_documents import invoice, rendering
from kc_documents.pool import ProcessRenderer, timed_out

pytestmark = pytest.mark.slow  # worker processes: seconds each (not in `make test-unit`)

PROBE = Path(__file__).with_name("pool_probe.py")


@pytest.fixture(scope="module")
def renderer():
    renderer = ProcessRenderer(workers=1, timeout=60)
    renderer.run(rendering.warm_up)
    yield renderer
    renderer.shutdown()


def test_rendering_does_not_block_the_event_loop(renderer):
    assert eventlet.patcher.is_monkey_patched("thread")  # as in `nameko run`
    ticks, running = [], [True]

    def ticker():
        while running[0]:
            ticks.append(time.monotonic())
            eventlet.sleep(0.005)
    thread = eventlet.spawn(ticker)
    start = time.monotonic()
    pdf, _ = renderer.run(invoice.render_invoice, invoice.sample_invoice(lines=25))
    end = time.monotonic()
    running[0] = False
    thread.wait()
    assert pdf.startswith(b"%PDF-") and pid_of_worker_differs(renderer)
    # The green thread ticked while the job was in the worker: rendering inline would hold the
    # event loop from start to end, leaving no tick in between. Counted, not timed, so a busy
    # machine (slower render, slower ticks alike) does not make it fail.
    during = [t for t in ticks if start < t < end]
    assert len(during) >= 3, (len(during), end - start)


def pid_of_worker_differs(renderer):
    return renderer.run(os.getpid) != os.getpid()


def test_a_crashed_worker_fails_the_job_and_is_replaced(renderer):
    with pytest.raises(ServiceUnavailable):
        renderer.run(os._exit, 3)
    assert renderer.run(rendering.warm_up) is True


def test_a_job_over_the_time_limit_fails_as_unavailable():
    import time as time_module
    renderer = ProcessRenderer(workers=1, timeout=0.2)
    try:
        with pytest.raises(ServiceUnavailable):
            renderer.run(time_module.sleep, 2)
    finally:
        renderer.shutdown()


def test_large_jobs_and_results_never_freeze_the_service():
    """Regression (issue 11): documents froze for good on an invoice with ~1,500 lines.

    As under ``nameko run``: one worker, three green threads each hand it a 2,000-line invoice
    (far more than a pipe buffer) and get 4 MiB back. The former pool deadlocked here (service
    and worker both blocked writing to a pipe; no timeout fired), so it runs in a subprocess
    this test kills when it does not finish."""
    proc = subprocess.Popen([sys.executable, "-W", "ignore", str(PROBE), "3", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the probe and its worker
        proc.communicate()
        pytest.fail("the render pool froze on large jobs and results")
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["sizes"] == [4 * 1024 * 1024] * 3  # every result whole and for its own job
    # The event loop kept running while each job was under way (a service blocked writing 4 MiB
    # into a pipe would not tick until the worker read it): counted per job, not timed.
    assert min(report["ticks_during_jobs"]) >= 3, report


def test_megabytes_travel_to_and_from_a_worker(renderer):
    payload = os.urandom(8 * 1024 * 1024)
    assert renderer.run(operator.concat, payload, payload) == payload + payload


def test_an_error_in_the_render_function_is_raised_and_the_worker_stays(renderer):
    pid = renderer.run(os.getpid)
    with pytest.raises(ZeroDivisionError) as err:
        renderer.run(operator.truediv, 1, 0)
    assert "ZeroDivisionError" in str(err.value.__cause__)  # the worker's traceback
    assert renderer.run(os.getpid) == pid


def test_a_job_over_the_time_limit_has_its_worker_killed_and_the_pool_works_again():
    renderer = ProcessRenderer(workers=1, timeout=1)
    try:
        stuck = renderer.run(os.getpid)
        start = time.monotonic()
        with pytest.raises(ServiceUnavailable) as err:
            renderer.run(time.sleep, 60)
        # The limit fired (the job would have taken a minute) and says so.
        assert time.monotonic() - start < 30 and timed_out(err.value)
        with pytest.raises(ProcessLookupError):
            os.kill(stuck, 0)  # killed and reaped, not left running
        fresh = renderer.run(os.getpid)
        assert fresh != stuck and renderer.pids() == [fresh]
        assert renderer.run(rendering.warm_up) is True
        # The killed worker's temporary files (weasyprint's fonts) went with it.
        assert len([name for name in os.listdir(renderer.workdir) if name.startswith("worker-")]) == 1
        workdir = renderer.workdir
    finally:
        renderer.shutdown()
    assert renderer.pids() == [] and not os.path.exists(workdir)


def test_shutting_down_under_a_running_job_fails_the_job_as_unavailable():
    """nameko stopping or killing the service while a document renders: the worker is killed,
    the job fails as transient (its event is retried), and the pool can start over."""
    renderer = ProcessRenderer(workers=1, timeout=60)
    try:
        renderer.warm_up()
        [busy] = renderer.pids()
        job = eventlet.spawn(renderer.run, time.sleep, 60)
        eventlet.sleep(0.5)  # the job is in the worker
        renderer.shutdown()
        with pytest.raises(ServiceUnavailable) as err:
            job.wait()
        assert not timed_out(err.value)
        with pytest.raises(ProcessLookupError):
            os.kill(busy, 0)
        assert renderer.run(operator.add, 1, 2) == 3 and busy not in renderer.pids()
    finally:
        renderer.shutdown()

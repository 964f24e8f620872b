"""Rendering in worker processes leaves the service's event loop free; a dead worker is replaced."""
import os
import time

import eventlet
import pytest

from kc_common.errors import ServiceUnavailable
from kc_documents import invoice, rendering
from kc_documents.pool import ProcessRenderer


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
    elapsed = time.monotonic() - start
    running[0] = False
    thread.wait()
    assert pdf.startswith(b"%PDF-") and pid_of_worker_differs(renderer)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    # The green thread kept ticking the whole time (rendering inline would stall it for `elapsed`).
    assert elapsed > 0.1 and max(gaps) < min(0.1, elapsed / 2), (elapsed, max(gaps))


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

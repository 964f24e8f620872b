"""Run by tests/test_pool.py in a fresh interpreter set up as ``nameko run`` sets up documents
(eventlet patches first, then kc_documents is imported): several green threads hand a render
pool of ONE worker an invoice of 2,000 lines each and get a multi-megabyte result back, while
another green thread ticks. Prints one JSON line: the result sizes, the longest tick gap, the
ticks during each job.

With the former ProcessPoolExecutor pool this froze for good (service blocked writing the next
job into the call pipe, worker blocked writing its result into the result pipe), so the test
runs it in a subprocess that it can kill.
"""
import hashlib
import json
import os
import sys
import time

RESULT_BYTES = 4 * 1024 * 1024


def big_result(inv, size):
    """Stands in for a render function: a large input in, a while busy, a multi-megabyte result out."""
    time.sleep(0.5)  # the next jobs arrive while this one renders
    seed = hashlib.sha256(json.dumps(inv, sort_keys=True).encode()).digest()
    return seed + os.urandom(size - len(seed))


def main(jobs, lines):
    import eventlet
    eventlet.monkey_patch()
    from kc_documents import invoice
    from kc_documents.pool import ProcessRenderer

    renderer = ProcessRenderer(workers=1, timeout=60)
    renderer.warm_up()
    inv = invoice.sample_invoice(lines=lines)
    expected = hashlib.sha256(json.dumps(inv, sort_keys=True).encode()).digest()
    ticks, running = [], [True]

    def ticker():
        while running[0]:
            ticks.append(time.monotonic())
            eventlet.sleep(0.01)

    windows = []

    def job(i):
        eventlet.sleep(0.1 * i)  # staggered, as events arrive
        start = time.monotonic()
        result = renderer.run(big_result, inv, RESULT_BYTES)
        windows.append((start, time.monotonic()))
        return len(result) if result.startswith(expected) else -1

    tick_thread = eventlet.spawn(ticker)
    try:
        sizes = list(eventlet.GreenPool().imap(job, range(jobs)))
    finally:
        running[0] = False
        tick_thread.wait()
        renderer.shutdown()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    during = [sum(1 for t in ticks if start < t < end) for start, end in windows]
    print(json.dumps({"sizes": sizes, "max_gap": max(gaps), "ticks_during_jobs": during}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

"""Rendering off the event loop: a pool of worker processes.

weasyprint is CPU-bound (tens to hundreds of milliseconds per page) and holds
the GIL, so rendering inside the service process would stall every other
green thread (RPCs, event handlers, the outbox relay). :class:`RendererPool`
runs render functions in a ``concurrent.futures.ProcessPoolExecutor``:

* ``spawn`` start method: the workers are fresh interpreters, never forks of
  the eventlet-patched service process (no inherited sockets, hub or locks);
  ``nameko run`` patches in its command, not at import, so the workers run
  plain, unpatched Python.
* Each worker builds weasyprint's font configuration and the base stylesheet
  once (:func:`kc_documents.rendering.warm_up`) and reuses them; the workers
  start with the service, before its entrypoints (readiness).
* A green thread waiting for a result cooperates with the hub (the executor's
  result pipe is read through eventlet's patched primitives), so the service
  keeps answering while documents render; tested in ``tests/test_pool.py``.
* ``RENDER_WORKERS`` (config, default: the number of CPUs) sizes the pool;
  ``RENDER_TIMEOUT`` (s) bounds one job. A crashed worker breaks the pool: it is
  replaced and the job fails (an event handler retries it).

Operators who want rendering on other machines run more ``documents``
instances: every instance has its own pool and they share the event queues.
"""
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from nameko.extensions import DependencyProvider

from kc_common.errors import ServiceUnavailable

log = logging.getLogger(__name__)


def _warm_up():
    from kc_documents.rendering import warm_up
    warm_up()


class ProcessRenderer:
    """The pool itself, usable without nameko (benchmark, tests)."""

    def __init__(self, workers=None, timeout=120.0):
        self.workers = int(workers or os.cpu_count() or 1)
        self.timeout = timeout
        self._executor = None

    def _get_executor(self):
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_up)
        return self._executor

    def submit(self, fn, *args):
        return self._get_executor().submit(fn, *args)

    def run(self, fn, *args):
        """``fn(*args)`` in a worker process; returns its result (or raises its error)."""
        try:
            return self.submit(fn, *args).result(timeout=self.timeout)
        except FutureTimeout:
            log.error("rendering with %s took longer than %.0fs", getattr(fn, "__name__", fn), self.timeout)
            raise ServiceUnavailable("Das Dokument konnte nicht rechtzeitig erzeugt werden.")
        except BrokenProcessPool:
            log.error("a render worker died; replacing the pool")
            self.shutdown()
            raise ServiceUnavailable("Das Dokument konnte gerade nicht erzeugt werden.")

    def warm_up(self):
        """Start every worker now (each builds its engine) instead of on the first document."""
        futures = [self.submit(_warm_up) for _ in range(self.workers)]
        for future in futures:
            future.result(timeout=self.timeout)

    def shutdown(self):
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class RendererPool(DependencyProvider):
    """nameko dependency: ``self.renderer.run(fn, *args)``."""

    def setup(self):
        config = self.container.config
        self.renderer = ProcessRenderer(workers=config.get("RENDER_WORKERS") or None,
                                        timeout=float(config.get("RENDER_TIMEOUT", 120)))

    def start(self):
        """Start the workers before the entrypoints start: the service answers (and /health says
        ok) only once it can render, so the first document is not slowed by the workers' imports."""
        if self.container.config.get("RENDER_PREWARM", True):
            self._warm_up()

    def _warm_up(self):
        try:
            self.renderer.warm_up()
            log.info("%d render worker process(es) ready", self.renderer.workers)
        except Exception:  # noqa: BLE001 - the first document will try again
            log.warning("render workers could not be started ahead", exc_info=True)

    def stop(self):
        self.renderer.shutdown()

    def kill(self):
        self.renderer.shutdown()

    def get_dependency(self, worker_ctx):
        return self.renderer

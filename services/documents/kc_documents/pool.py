"""Rendering off the event loop: a pool of worker processes that cannot deadlock.

weasyprint is CPU-bound (tens to hundreds of milliseconds per page) and holds
the GIL, so rendering inside the service process would stall every other
green thread (RPCs, event handlers, the outbox relay). :class:`ProcessRenderer`
runs render functions in worker processes of its own:

* ``spawn`` start method: the workers are fresh interpreters, never forks of
  the eventlet-patched service process (no inherited sockets, hub or locks);
  ``nameko run`` patches in its command, not at import, so the workers run
  plain, unpatched Python.
* **Data never travels through a pipe.** The job (function and arguments) is
  pickled to a file in a private temporary directory; the worker writes its
  result (or its error) to another file. Through the pipes go only the two
  paths and a "done" (a few hundred bytes, one message at a time per
  direction, far below the pipe buffer), so no write to a pipe can ever
  block, whatever the size of the invoice or the PDF.

  Why: ``concurrent.futures.ProcessPoolExecutor`` (used here before) sends
  the pickled job and result through pipes. Under eventlet its feeder and
  manager threads are green threads in the service's one OS thread, and
  eventlet's ``os.write`` only waits until the pipe is *writable* and then
  writes the whole buffer with a blocking ``write()``. A job larger than the
  pipe buffer (64 KiB; an invoice with ~500 lines) blocked the whole service
  until the worker read it, while the worker was busy writing the previous
  result (a multi-megabyte PDF) into the result pipe that the blocked service
  could not read: both processes blocked writing, the hub never ran again, so
  no timeout fired either (issue 11: froze for good at ~1,500 lines).
* One job per worker at a time; a green thread waits for the "done" (or the
  worker's exit, or the timeout) cooperatively (a selector resolved at call
  time, eventlet's green one in the service), so the service keeps answering
  while documents render; tested in ``tests/test_pool.py``.
* ``RENDER_TIMEOUT`` (s) bounds one job in the worker: when it passes, the
  worker process is **killed** (SIGKILL, reaped) and replaced by a fresh one,
  and the job raises :class:`ServiceUnavailable` with ``details["reason"] ==
  "render_timeout"`` (see :func:`timed_out`; event handlers park such a
  document instead of retrying it). Waiting for a free worker is bounded by
  the same time (``"render_busy"``, retried). A crashed worker is replaced
  too and its job raises ``ServiceUnavailable`` (an event handler retries
  it): the service process itself never goes down with a worker.
* Each worker builds weasyprint's font configuration and the base stylesheet
  once (:func:`kc_documents.rendering.warm_up`) and reuses them; the workers
  start with the service, before its entrypoints (readiness).
* ``RENDER_WORKERS`` (config, default: the number of CPUs) sizes the pool.

Operators who want rendering on other machines run more ``documents``
instances: every instance has its own pool and they share the event queues.
"""
import logging
import multiprocessing
import os
import pickle
import queue
import selectors
import shutil
import signal
import tempfile
import time
import traceback
import uuid

from nameko.extensions import DependencyProvider

from kc_common.errors import ServiceUnavailable

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
TIMEOUT_REASON = "render_timeout"
BUSY_REASON = "render_busy"
CRASH_REASON = "render_worker_died"


def timed_out(exc):
    """True when ``exc`` is the pool's "took longer than RENDER_TIMEOUT" (not a crash or a busy pool)."""
    return isinstance(exc, ServiceUnavailable) and exc.details.get("reason") == TIMEOUT_REASON


def _warm_up():
    """Build the engine, then render one sample invoice: its imports (e-invoice XML, XSD,
    QR code) and first layout would otherwise slow the first real document by ~0.5 s."""
    from kc_documents import invoice
    from kc_documents.rendering import warm_up
    warm_up()
    invoice.render_invoice(invoice.sample_invoice())
    return True


# --- the worker process --------------------------------------------------------------------------

class RemoteTraceback(Exception):
    """The worker's traceback, chained to an error re-raised in the service (as concurrent.futures)."""

    def __str__(self):
        return self.args[0]


def _dump(path, outcome):
    with open(path, "wb") as file:
        pickle.dump(outcome, file, protocol=pickle.HIGHEST_PROTOCOL)


def _worker_main(inbox, outbox, tmpdir):
    """A worker's life: warm up, say ready, then one job at a time until told to stop (or EOF).

    Its temporary files (weasyprint's copies of the fonts) go to ``tmpdir``, which the service
    removes with the worker: a killed worker leaves nothing behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the service's; it stops us
    tempfile.tempdir = tmpdir
    _warm_up()
    outbox.send(("ready", os.getpid()))
    while True:
        try:
            job = inbox.recv()
        except (EOFError, OSError):
            return  # the service has gone
        if job is None:
            return
        job_path, result_path = job
        try:
            with open(job_path, "rb") as file:
                fn, args = pickle.load(file)
            outcome = ("ok", fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            outcome = ("error", exc, traceback.format_exc())
        try:
            _dump(result_path, outcome)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result or error
            _dump(result_path, ("error", RuntimeError(f"result not transferable: {exc!r}"),
                                traceback.format_exc()))
        try:
            outbox.send(("done", result_path))
        except OSError:
            return  # the service stopped (or was killed) while we rendered: nobody to tell


# --- the service side ----------------------------------------------------------------------------

class WorkerGone(Exception):
    """The worker process exited (crash, OOM kill, os._exit) without answering."""


def _readable(objects, timeout):
    """Which of ``objects`` (connections, fds) are readable within ``timeout``.

    The selector is looked up now, not at import: in the service that is eventlet's green one,
    so a green thread waiting here lets the others run."""
    with selectors.DefaultSelector() as selector:
        for obj in objects:
            selector.register(obj, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout)]


class _Worker:
    """One worker process and its two one-way pipes (the service holds one end of each)."""

    def __init__(self, workdir):
        self.tmpdir = tempfile.mkdtemp(prefix="worker-", dir=workdir)
        inbox_r, self.inbox = SPAWN.Pipe(duplex=False)
        self.outbox, outbox_w = SPAWN.Pipe(duplex=False)
        self.process = SPAWN.Process(target=_worker_main, args=(inbox_r, outbox_w, self.tmpdir),
                                     name="kc-render-worker", daemon=True)
        try:
            self.process.start()
        finally:
            inbox_r.close()
            outbox_w.close()
        self.ready = False

    @property
    def pid(self):
        return self.process.pid

    def send(self, message):
        self.inbox.send(message)  # a few hundred bytes into an empty pipe: never blocks

    def receive(self, timeout):
        """The worker's next message, or None after ``timeout`` s; WorkerGone if it exited."""
        ready = _readable([self.outbox, self.process.sentinel], timeout)
        if self.outbox in ready:
            try:
                return self.outbox.recv()
            except (EOFError, OSError) as err:
                raise WorkerGone() from err
        if ready:
            raise WorkerGone()
        return None

    def wait_ready(self, timeout):
        if not self.ready:
            message = self.receive(timeout)
            if message is None:
                raise TimeoutError("the render worker did not start in time")
            self.ready = True

    def _reaped(self, seconds):
        """Wait up to ``seconds`` for the process to end, polling (``waitpid(WNOHANG)``), not
        selecting on its sentinel, so it never competes with a green thread waiting there."""
        deadline = time.monotonic() + seconds
        while self.process.is_alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # eventlet's sleep in the service: the others run
        return True

    def stop(self, grace=1.0):
        """Ask an idle worker to exit, kill it if it does not."""
        try:
            self.send(None)
        except OSError:
            pass
        self._reaped(grace)
        self.kill()

    def signal_kill(self):
        if self.process.is_alive():
            self.process.kill()

    def kill(self):
        """SIGKILL and reap: a stuck worker (in weasyprint's C code, in a loop) ends here for sure."""
        self.signal_kill()
        if not self._reaped(5):
            log.error("render worker %s did not end after SIGKILL", self.pid)
        for conn in (self.inbox, self.outbox):
            conn.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class _Slot:
    """A place for one worker; ``busy`` while a job (or the warm-up) holds it."""

    def __init__(self):
        self.worker = None
        self.busy = False


class ProcessRenderer:
    """The pool itself, usable without nameko (benchmark, tests).

    ``run(fn, *args)`` returns ``fn(*args)`` computed in a worker process; ``fn`` and its
    arguments must be picklable (module-level functions, plain data)."""

    def __init__(self, workers=None, timeout=120.0, start_timeout=60.0):
        self.workers = int(workers or os.cpu_count() or 1)
        self.timeout = float(timeout)
        self.start_timeout = float(start_timeout)
        self._slots = queue.Queue()
        self._all = [_Slot() for _ in range(self.workers)]
        for slot in self._all:
            self._slots.put(slot)
        self._workdir = None
        self._generation = 0  # counts shutdowns

    # -- the job's files --

    @property
    def workdir(self):
        """The pool's private directory: jobs, results and each worker's temporary files."""
        if self._workdir is None or not os.path.isdir(self._workdir):
            self._workdir = tempfile.mkdtemp(prefix="kc-render-")  # 0700: only this user reads jobs
        return self._workdir

    def _paths(self):
        stem = os.path.join(self.workdir, uuid.uuid4().hex)
        return stem + ".job", stem + ".result"

    # -- workers --

    def _acquire(self):
        try:
            slot = self._slots.get(timeout=self.timeout)
        except queue.Empty:
            log.error("no render worker free within %.0fs", self.timeout)
            raise ServiceUnavailable("Das Dokument kann gerade nicht erzeugt werden (ausgelastet).",
                                     {"reason": BUSY_REASON}) from None
        slot.busy = True
        return slot

    def _release(self, slot):
        slot.busy = False
        self._slots.put(slot)

    def _started(self, slot):
        worker = slot.worker
        if worker is None or not worker.process.is_alive():
            if worker is not None:
                worker.kill()
            worker = slot.worker = _Worker(self.workdir)
        return worker

    def _replace(self, slot, generation):
        """Kill the slot's worker and start a fresh one right away (it warms up meanwhile),
        unless the pool was shut down in the meantime."""
        self._discard(slot)
        if generation == self._generation:
            slot.worker = _Worker(self.workdir)

    def _discard(self, slot):
        worker, slot.worker = slot.worker, None
        if worker is not None:
            worker.kill()

    def _ready_worker(self, slot):
        worker = self._started(slot)
        try:
            worker.wait_ready(self.start_timeout)
        except (TimeoutError, WorkerGone) as exc:
            log.error("a render worker could not be started: %r", exc)
            self._discard(slot)
            raise ServiceUnavailable("Das Dokument konnte gerade nicht erzeugt werden.",
                                     {"reason": CRASH_REASON}) from exc
        return worker

    # -- jobs --

    def run(self, fn, *args):
        """``fn(*args)`` in a worker process; returns its result (or raises its error)."""
        slot = self._acquire()
        try:
            return self._run_in(slot, fn, args)
        finally:
            self._release(slot)

    def _run_in(self, slot, fn, args):
        generation = self._generation
        worker = self._ready_worker(slot)
        name = getattr(fn, "__name__", repr(fn))
        job_path, result_path = self._paths()
        sent = answered = False
        try:
            _dump(job_path, (fn, args))
            worker.send((job_path, result_path))
            sent = True
            message = worker.receive(self.timeout)
            if message is None:
                log.error("rendering with %s took longer than %.0fs; worker %s killed and replaced",
                          name, self.timeout, worker.pid)
                self._replace(slot, generation)
                raise ServiceUnavailable("Das Dokument konnte nicht rechtzeitig erzeugt werden.",
                                         {"reason": TIMEOUT_REASON, "timeout": self.timeout})
            if message != ("done", result_path):
                raise WorkerGone(f"unexpected message {message!r}")
            answered = True
            with open(result_path, "rb") as file:
                outcome = pickle.load(file)
        except WorkerGone:
            log.error("render worker %s died while rendering with %s", worker.pid, name)
            self._replace(slot, generation)
            raise ServiceUnavailable("Das Dokument konnte gerade nicht erzeugt werden.",
                                     {"reason": CRASH_REASON}) from None
        except BaseException as exc:
            if sent and not answered and slot.worker is worker:
                # e.g. the green thread was killed while waiting: the worker's state is unknown
                self._discard(slot)
            if isinstance(exc, Exception) and generation != self._generation:
                # the pool was shut down under the job (its pipes closed): transient, retried
                raise ServiceUnavailable("Das Dokument konnte gerade nicht erzeugt werden.",
                                         {"reason": CRASH_REASON}) from exc
            raise
        finally:
            for path in (job_path, result_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        if outcome[0] == "ok":
            return outcome[1]
        _, exc, remote_tb = outcome
        raise exc from RemoteTraceback(remote_tb)

    def warm_up(self):
        """Start every worker now (each builds its engine) instead of on the first document."""
        slots = [self._acquire() for _ in range(self.workers)]
        try:
            for slot in slots:
                self._started(slot)  # all start in parallel...
            for slot in slots:
                self._ready_worker(slot)  # ...and are waited for one by one
        finally:
            for slot in slots:
                self._release(slot)

    def pids(self):
        """Process ids of the running workers (operations, tests)."""
        return [slot.worker.pid for slot in self._all if slot.worker is not None and slot.worker.process.is_alive()]

    def shutdown(self):
        """Stop every worker; the pool starts new ones if used again.

        An idle worker is asked to exit (killed if it does not); a busy one is killed and its
        job, which is waiting for it, cleans up and fails with ServiceUnavailable."""
        self._generation += 1
        deadline = time.monotonic() + 2.0
        for slot in self._all:
            if slot.busy:
                if slot.worker is not None:
                    slot.worker.signal_kill()
                continue
            worker, slot.worker = slot.worker, None
            if worker is not None:
                worker.stop(grace=max(0.0, deadline - time.monotonic()))
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


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

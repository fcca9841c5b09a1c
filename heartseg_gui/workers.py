"""Run plain, cancellable core jobs on QThreads, in superqt's worker vocabulary.

A *job function* is ``fn(*, progress, cancel, yielded) -> result``: ``progress`` takes a
:class:`core.types.Progress`, ``cancel`` is a :class:`core.types.CancelToken` the job checks once per batch,
``yielded(value)`` hands an intermediate result (one batch of predicted slices) back to the window.

A :class:`Job` only adapts that to signals, named as :mod:`superqt.utils` names them: ``started``, ``yielded``,
``returned``, ``errored`` (the exception object itself), ``aborted`` (cancelled) and ``finished`` (always last),
plus ``progress``. It never touches a widget. :func:`error_text` is the one line a user reads for an error.

:class:`JobRunner` owns the threads: :meth:`JobRunner.start` runs each job on a ``QThread`` of its own and connects
that job's callbacks once, through a relay object living in the GUI thread, so every callback runs there and
knows which job it belongs to (no routing by ``sender()``). When the thread has stopped, the job is dropped and its
thread and relay are retired: released at the runner's next start, forget or shutdown, synchronously in the GUI
thread (at most one finished job's pair waits, never the job itself); closing the window cancels every job and
waits for the threads.

Python's cyclic garbage collector runs in whichever thread happens to allocate when a threshold is crossed; with
jobs running Python on worker threads, that would destroy unreachable Qt objects (a closed dialog, a controller
with lambda connections) on a worker thread, outside their own thread: Qt then crashed in ``QObject::~QObject``
processing a deferred delete in the GUI thread (a bus error, seen in the test suite). The first
:class:`JobRunner` therefore hands collection to the GUI thread (:func:`collect_garbage_in_gui_thread`,
pyqtgraph's ``GarbageCollector``: automatic collection off, a timer collects in the GUI thread).

Why not ``superqt.utils.new_worker_qthread``: it quits the thread through a queued connection, which never runs
while the GUI thread waits for that thread (closing the window), and it deletes the thread while it may still be
waited for. This module keeps superqt's names and the one-QThread-per-job design with a thread it owns.
"""

from __future__ import annotations

import logging
import traceback
import weakref
from typing import Callable, Optional

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from core.errors import Cancelled, HeartsegError
from core.types import CancelToken, Progress

log = logging.getLogger(__name__)

JobFn = Callable[..., object]
Callback = Optional[Callable[..., None]]


def error_text(job_name: str, exc: BaseException) -> str:
    """The one-line message for a job's error: a :class:`HeartsegError` says it all; anything else is named."""
    if isinstance(exc, HeartsegError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{job_name}: not enough memory"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{job_name} failed: {type(exc).__name__}: {text}"


_gui_thread_gc: Optional[GarbageCollector] = None

#: How often (seconds) the GUI thread checks whether a collection is due (:class:`GarbageCollector`).
GC_INTERVAL_S = 1.0


def collect_garbage_in_gui_thread() -> None:
    """From now on, collect cyclic garbage only in the GUI thread (idempotent; call it in the GUI thread)."""
    global _gui_thread_gc
    app = QCoreApplication.instance()
    if _gui_thread_gc is not None or app is None or QThread.currentThread() is not app.thread():
        return
    _gui_thread_gc = GarbageCollector(interval=GC_INTERVAL_S)


class Job(QObject):
    """One core job. Create it in the GUI thread and hand it to :meth:`JobRunner.start`.

    ``generation`` tags the job (the controller drops results of a superseded generation)."""

    started = Signal()
    progress = Signal(object)      # core.types.Progress
    yielded = Signal(object)       # an intermediate result (one batch)
    returned = Signal(object)      # the result
    errored = Signal(object)       # the exception (see error_text)
    aborted = Signal()             # cancelled
    finished = Signal()            # always last

    def __init__(self, name: str, fn: JobFn, generation: int = 0):
        super().__init__()
        self.name = name
        self.generation = generation
        self.cancel_token = CancelToken()
        self._fn: Optional[JobFn] = fn
        self.outcome: Optional[str] = None  # "returned" | "errored" | "cancelled" once finished

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation check (thread-safe)."""
        self.cancel_token.cancel()

    def _report(self, item: Progress) -> None:
        self.progress.emit(item)

    def _yield(self, value: object) -> None:
        if not self.cancel_token.cancelled:
            self.yielded.emit(value)

    @Slot()
    def work(self) -> None:
        """Run the job function (on the worker thread) and report its outcome."""
        self.started.emit()
        try:
            result = self._fn(progress=self._report, cancel=self.cancel_token, yielded=self._yield)
        except Cancelled:
            self.outcome = "cancelled"
            self.aborted.emit()
        except MemoryError as exc:
            self.outcome = "errored"
            self.errored.emit(exc)
        except HeartsegError as exc:
            self.outcome = "errored"
            self.errored.emit(exc)
        except Exception as exc:  # noqa: BLE001 - a worker must never take the window down
            log.error("job %s failed:\n%s", self.name, traceback.format_exc())
            self.outcome = "errored"
            self.errored.emit(exc)
        else:
            if self.cancel_token.cancelled:
                self.outcome = "cancelled"
                self.aborted.emit()
            else:
                self.outcome = "returned"
                self.returned.emit(result)
        finally:
            # hand the job back to the GUI thread before the worker thread ends, so it is deleted there
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            self._fn = None  # drop the data the job held (volume copies ...)
            self.finished.emit()


class _Relay(QObject):
    """Lives in the GUI thread: receives one job's signals (queued) and calls that job's callbacks there."""

    def __init__(self, runner: "JobRunner", job: Job, callbacks: dict[str, Callable]):
        super().__init__()  # no parent: the runner holds it, and releases it in the GUI thread (JobRunner._forget)
        self._runner = weakref.ref(runner)
        self._key = id(job)
        self._callbacks = callbacks

    def _call(self, name: str, *args) -> None:
        callback = self._callbacks.get(name)
        if callback is not None:
            callback(*args)

    @Slot()
    def on_started(self) -> None:
        self._call("started")

    @Slot(object)
    def on_progress(self, item) -> None:
        self._call("progress", item)

    @Slot(object)
    def on_yielded(self, value) -> None:
        self._call("yielded", value)

    @Slot(object)
    def on_returned(self, result) -> None:
        self._call("returned", result)

    @Slot(object)
    def on_errored(self, exc) -> None:
        self._call("errored", exc)

    @Slot()
    def on_aborted(self) -> None:
        self._call("aborted")

    @Slot()
    def on_finished(self) -> None:
        self._call("finished")

    @Slot()
    def on_thread_finished(self) -> None:
        runner = self._runner()
        if runner is not None:
            runner._forget(self._key)


class JobRunner(QObject):
    """Starts jobs on threads and keeps each job, its thread and its relay alive until the thread has stopped."""

    SIGNALS = ("started", "progress", "yielded", "returned", "errored", "aborted", "finished")

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        collect_garbage_in_gui_thread()
        self._running: dict[int, tuple[Job, QThread, _Relay]] = {}  # by id(job)
        self._retired: list[tuple[QThread, _Relay]] = []

    def start(self, job: Job, *, started: Callback = None, progress: Callback = None, yielded: Callback = None,
              returned: Callback = None, errored: Callback = None, aborted: Callback = None,
              finished: Callback = None) -> Job:
        """Run ``job`` on a thread of its own; each given callback is called in the GUI thread with the signal's
        value (``errored`` with the exception). One connection per signal and job."""
        self._release_retired()
        callbacks = {"started": started, "progress": progress, "yielded": yielded, "returned": returned,
                     "errored": errored, "aborted": aborted, "finished": finished}
        thread = QThread()
        thread.setObjectName(f"heartseg-{job.name}")
        job.moveToThread(thread)
        relay = _Relay(self, job, {k: v for k, v in callbacks.items() if v is not None})
        for name in self.SIGNALS:
            if callbacks[name] is not None:
                getattr(job, name).connect(getattr(relay, f"on_{name}"))
        thread.started.connect(job.work)
        # direct: QThread.quit is thread-safe, and the GUI thread may be blocked in wait() (closing)
        job.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(relay.on_thread_finished)
        self._running[id(job)] = (job, thread, relay)
        thread.start()
        return job

    def _forget(self, key: int) -> None:
        """The job's thread has stopped: drop the job, and retire its thread and relay.

        Called from the relay's own slot, so the relay is not deleted here: retired threads and relays are released
        at the next start, forget or shutdown, synchronously in the GUI thread (never by a deferred delete, and never
        by the garbage collector on a worker thread)."""
        entry = self._running.pop(key, None)
        if entry is None:
            return
        _job, thread, relay = entry
        thread.wait()
        self._release_retired()
        self._retired.append((thread, relay))

    def _release_retired(self) -> None:
        retired, self._retired = self._retired, []
        for _thread, relay in retired:
            relay._callbacks = {}  # the callbacks may hold the window's objects
        retired.clear()  # the QThread and the relay are deleted here, in the GUI thread; pending events with them

    @property
    def jobs(self) -> list[Job]:
        return [job for job, _thread, _relay in self._running.values()]

    def busy(self, name: Optional[str] = None) -> bool:
        return any(name is None or job.name == name for job in self.jobs)

    def cancel_all(self) -> None:
        for job in self.jobs:
            job.cancel()

    def wait_all(self, timeout_ms: Optional[int] = None) -> bool:
        """Block until every thread has finished (``timeout_ms`` None: forever). Returns True when none runs."""
        ok = True
        for _job, thread, _relay in list(self._running.values()):
            done = thread.wait() if timeout_ms is None else thread.wait(int(timeout_ms))
            ok = ok and bool(done)
        return ok

    def shutdown(self) -> None:
        """Cancel every job and wait until its thread has stopped (used when the window closes)."""
        self.cancel_all()
        self.wait_all()
        for key in list(self._running):
            self._forget(key)
        self._release_retired()

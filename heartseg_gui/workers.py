"""Run plain, cancellable core jobs on QThreads and report through signals.

A *job function* is ``fn(*, progress, cancel, partial) -> result``: ``progress`` takes a
:class:`core.types.Progress`, ``cancel`` is a :class:`core.types.CancelToken` the job checks once per batch,
``partial(payload)`` hands intermediate results (for example one batch of probabilities) back to the window.

A :class:`Job` only adapts that to signals (``started / progress / partial / returned / errored / cancelled /
finished``); it never touches a widget. Every signal carries the job's generation number so the receiver can
drop results of a superseded job. :class:`JobRunner` owns the threads: it starts each job on its own
``QThread``, cancels them and waits for them, so closing the window never destroys a running thread.
"""

from __future__ import annotations

import logging
import traceback
from typing import Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from core.errors import Cancelled, HeartsegError
from core.types import CancelToken, Progress

log = logging.getLogger(__name__)

JobFn = Callable[..., object]
RETIRED_KEPT = 8


class Job(QObject):
    """One core job. Create it in the main thread, hand it to :meth:`JobRunner.start`."""

    started = Signal(int)              # generation
    progress = Signal(int, object)     # generation, core.types.Progress
    partial = Signal(int, object)      # generation, payload
    returned = Signal(int, object)     # generation, result
    errored = Signal(int, str)         # generation, one-line message
    cancelled = Signal(int)            # generation
    finished = Signal(int)             # generation (always last)

    def __init__(self, name: str, fn: JobFn, generation: int = 0):
        super().__init__()
        self.name = name
        self.generation = generation
        self.cancel_token = CancelToken()
        self._fn = fn
        self.outcome: Optional[str] = None  # "returned" | "errored" | "cancelled" once finished

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation check (thread-safe)."""
        self.cancel_token.cancel()

    @property
    def is_cancelled(self) -> bool:
        return self.cancel_token.cancelled

    def _report(self, item: Progress) -> None:
        self.progress.emit(self.generation, item)

    def _partial(self, payload: object) -> None:
        if not self.cancel_token.cancelled:
            self.partial.emit(self.generation, payload)

    @Slot()
    def run(self) -> None:
        gen = self.generation
        self.started.emit(gen)
        try:
            result = self._fn(progress=self._report, cancel=self.cancel_token, partial=self._partial)
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit(gen)
        except HeartsegError as exc:
            self.outcome = "errored"
            self.errored.emit(gen, str(exc))
        except MemoryError:
            self.outcome = "errored"
            self.errored.emit(gen, f"{self.name}: not enough memory")
        except Exception as exc:  # noqa: BLE001 - a worker must never take the window down
            log.error("job %s failed:\n%s", self.name, traceback.format_exc())
            self.outcome = "errored"
            text = " ".join(str(exc).split()) or type(exc).__name__
            self.errored.emit(gen, f"{self.name} failed: {type(exc).__name__}: {text}")
        else:
            if self.cancel_token.cancelled:
                self.outcome = "cancelled"
                self.cancelled.emit(gen)
            else:
                self.outcome = "returned"
                self.returned.emit(gen, result)
        finally:
            # hand the job back to the GUI thread before the worker thread ends, so it is deleted there
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            self._fn = None  # drop the data the job held (volume copies ...)
            self.finished.emit(gen)


class _ThreadWatcher(QObject):
    """Lives in the main thread; receives ``QThread.finished`` (emitted from the worker thread) queued."""

    def __init__(self, runner: "JobRunner", job: Job):
        super().__init__(runner)
        self._runner = runner
        self._job = job

    @Slot()
    def done(self) -> None:
        self._runner._forget(self._job)


class JobRunner(QObject):
    """Starts jobs on threads and keeps both alive until the thread has really finished."""

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._running: dict[Job, tuple[QThread, _ThreadWatcher]] = {}
        self._retired: list[tuple] = []

    def start(self, job: Job) -> Job:
        thread = QThread()
        thread.setObjectName(f"heartseg-{job.name}")
        job.moveToThread(thread)
        thread.started.connect(job.run)
        # direct: QThread.quit is thread-safe, and the main thread may be blocked in wait() (closing)
        job.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        watcher = _ThreadWatcher(self, job)
        thread.finished.connect(watcher.done)
        self._running[job] = (thread, watcher)
        thread.start()
        return job

    def _forget(self, job: Job) -> None:
        entry = self._running.pop(job, None)
        if entry is None:
            return
        thread, watcher = entry
        thread.wait()
        # the watcher's queued call may still be pending: drop it before the thread it names is deleted
        QCoreApplication.removePostedEvents(watcher)
        watcher.setParent(None)
        # keep the last few finished jobs a little longer: signals they queued (and that name them as sender)
        # may still be waiting in the event queue; older ones are deleted here, in the GUI thread
        self._retired.append((thread, job, watcher))
        del self._retired[:-RETIRED_KEPT]

    @property
    def jobs(self) -> list[Job]:
        return list(self._running)

    def busy(self, name: Optional[str] = None) -> bool:
        return any(name is None or j.name == name for j in self._running)

    def cancel_all(self) -> None:
        for job in list(self._running):
            job.cancel()

    def wait_all(self, timeout_ms: Optional[int] = None) -> bool:
        """Block until every thread has finished (``timeout_ms`` None: forever). Returns True when none runs."""
        ok = True
        for thread, _watcher in list(self._running.values()):
            done = thread.wait() if timeout_ms is None else thread.wait(int(timeout_ms))
            ok = ok and bool(done)
        return ok

    def shutdown(self) -> None:
        """Cancel every job and wait until its thread has stopped (used when the window closes)."""
        self.cancel_all()
        self.wait_all()
        for job in list(self._running):
            self._forget(job)

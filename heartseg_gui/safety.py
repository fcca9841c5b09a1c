"""Never lose a clinician's work: the window's edit lock, autosave journal and recovery prompt.

:class:`EditSafety` watches the controller (no logic of its own beyond calling :mod:`core.store.locking` and
:mod:`core.store.journal`):

* a scan opens -> lock it (the patient folder's ``.heartseg/lock.json``, or the per-user folder for scans without
  a dataset). If another live window holds the lock the scan opens **read-only**: editing actions are disabled,
  Save refuses, and a status-bar banner says who holds it and since when. Stale locks of dead processes are taken
  over silently.
* while editing -> :meth:`core.store.journal.Journal.tick` every second (writes every ``interval`` seconds or every 5
  edits, whichever first; ``HEARTSEG_JOURNAL_INTERVAL_S`` overrides the interval, default 3 s).
* a scan with a journal from a crashed session opens -> :attr:`ask_recover` (a Recover / Discard question;
  tests replace it) -> the edits are restored exactly as one undo step, or the journal is set aside.
* saved -> the journal is cleared; discarded (Save / Discard / Cancel answered Discard) -> cleared; a scan
  replaced or the window closed with unsaved edits any other way -> the journal is flushed and kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel, QMessageBox

from core.errors import HeartsegError
from core.store.journal import DEFAULT_INTERVAL_S, Journal

INTERVAL_ENV = "HEARTSEG_JOURNAL_INTERVAL_S"
#: Actions that change the mask, the review states or the files: disabled while read-only.
EDIT_ACTIONS = ("tool_brush", "tool_eraser", "accept_ai_slice", "accept_ai_all", "clear_slice", "fill_holes",
                "keep_largest", "copy_previous", "copy_next", "review_accept", "review_flag", "review_reset", "undo",
                "redo", "save")


class BoolRefGuard(QObject):
    """Workaround for a PySide6 6.12.0 bug: every ``Signal.emit()`` drops one reference to ``True`` without
    taking it. On Python < 3.12 (``True`` is not immortal) a few thousand emits -- a couple of minutes of painting
    -- bring its count to zero and the interpreter aborts ("bool_dealloc: deallocating True or False"), killing
    the window and the clinician's unsaved work. Probed once at start-up: only when emits really leak does a
    timer keep the count topped up (``Py_IncRef``; a few MB over a long day). Harmless and idle elsewhere."""

    MINIMUM = 200_000
    TOP_UP = 400_000

    _installed: Optional["BoolRefGuard"] = None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.leaks = self._probe()
        self.top_ups = 0
        if self.leaks:
            self.check()
            self.timer = QTimer(self)
            self.timer.setInterval(500)
            self.timer.timeout.connect(self.check)
            self.timer.start()

    @staticmethod
    def _probe() -> bool:
        import sys

        class Probe(QObject):
            ping = Signal()

        probe = Probe()
        before = sys.getrefcount(True)
        for _ in range(8):
            probe.ping.emit()
        leaked = sys.getrefcount(True) < before - 4
        if leaked:
            BoolRefGuard._incref(before - sys.getrefcount(True))
        return leaked

    @staticmethod
    def _incref(n: int) -> None:
        import ctypes

        incref = ctypes.pythonapi.Py_IncRef
        incref.argtypes = [ctypes.py_object]
        incref.restype = None
        for _ in range(max(0, int(n))):
            incref(True)

    def check(self) -> None:
        import sys

        count = sys.getrefcount(True)
        if count < self.MINIMUM:
            self._incref(self.TOP_UP - count)
            self.top_ups += 1

    @classmethod
    def install(cls, app) -> "BoolRefGuard":
        """One guard per process, owned by the QApplication."""
        if cls._installed is None:
            cls._installed = cls(app)
        return cls._installed


def journal_interval_s() -> float:
    try:
        return max(0.05, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class EditSafety(QObject):
    readOnlyChanged = Signal(str)     # the reason, "" when the open scan is editable
    recovered = Signal(int)           # number of slices restored from a journal

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.c = window.controller
        self.journal: Optional[Journal] = None
        self.lock = None
        self.read_only_reason = ""
        self._session = None
        self._discarded = False
        self._last_error: Optional[str] = None
        self.ask_recover = self._ask_recover   # replaceable: (text) -> bool
        self.banner = QLabel("")
        self.banner.setObjectName("readOnlyBanner")
        self.banner.setStyleSheet("QLabel { background: #b45309; color: white; padding: 1px 6px; }")
        self.banner.setVisible(False)
        window.statusBar().insertPermanentWidget(0, self.banner)  # permanent: status messages never hide it
        interval = journal_interval_s()
        self.timer = QTimer(self)
        self.timer.setInterval(int(min(1000, max(50, interval * 1000 / 3))))
        self.timer.timeout.connect(self.tick)
        self._interval = interval
        self.c.sessionChanged.connect(self._on_session)
        self.c.historyChanged.connect(self._on_edit)
        self.c.reviewChanged.connect(self._on_edit)
        window.files.saved.connect(self._on_saved)
        from PySide6.QtCore import QCoreApplication

        if QCoreApplication.instance() is not None:
            self.bool_guard = BoolRefGuard.install(QCoreApplication.instance())
        if hasattr(window.files, "discarded"):
            window.files.discarded.connect(self._on_discarded)

    # --- state of the open scan ------------------------------------------------------------------------------
    @property
    def editor(self):
        return None if self.c.session is None else self.c.session.editor

    def _scan_and_patient(self, session) -> tuple[Path, Optional[Path]]:
        patient = session.save_target.patient_dir if session.save_target is not None else None
        scan = session.origin if session.origin is not None else (
            Path(session.volume.source_files[0]) if session.volume.source_files else Path(session.volume.name))
        return Path(scan), None if patient is None else Path(patient)

    def _on_session(self) -> None:
        session = self.c.session
        if session is self._session:
            return
        self._leave(self._session)
        self._session = session
        if session is None:
            return
        scan, patient = self._scan_and_patient(session)
        self.journal = Journal(scan, patient, interval_s=self._interval)
        self.lock, reason = self.journal.acquire_lock()
        self._set_read_only(reason or "")
        if reason:
            return
        self.journal.attach(session.editor)
        self.timer.start()
        QTimer.singleShot(0, lambda s=session: self._offer_recovery(s))

    def _leave(self, session) -> None:
        """The open scan is replaced or the window closes: keep unsaved edits journalled unless discarded."""
        self.timer.stop()
        if self.journal is not None and session is not None and not self.read_only_reason:
            if session.editor.modified and not self._discarded:
                self.journal.tick(session.editor, force=True)
            else:
                self.journal.clear()
        self._discarded = False
        if self.lock is not None:
            self.lock.release()
        self.lock = None
        self.journal = None

    def shutdown(self) -> None:
        """The window is closing (after the Save / Discard / Cancel question)."""
        self._leave(self._session)
        self._session = None

    # --- read-only -------------------------------------------------------------------------------------------
    def _set_read_only(self, reason: str) -> None:
        self.read_only_reason = reason
        if self.c.session is not None:
            self.c.session.read_only_reason = reason
        if reason:
            from heartseg_gui.views.slice_view import NAVIGATE

            self.window.set_tool(NAVIGATE)
        self.apply_read_only()
        self.banner.setText(f"Read-only: {reason}" if reason else "")
        self.banner.setToolTip("Another heartseg window is editing this scan. Close it there to edit here; "
                               "Export Masks… still works." if reason else "")
        self.banner.setVisible(bool(reason))
        if reason:
            self.c.statusMessage.emit(f"Opened read-only — {reason}")
        self.readOnlyChanged.emit(reason)

    def apply_read_only(self) -> None:
        """Disable the editing actions while read-only (the window re-enables actions on every new scan)."""
        if not self.read_only_reason:
            return
        for name in EDIT_ACTIONS:
            action = getattr(self.window.actions, name, None)
            if action is not None:
                action.setEnabled(False)

    # --- journal ---------------------------------------------------------------------------------------------
    def _on_edit(self) -> None:
        if self.journal is not None and not self.read_only_reason:
            self.journal.note_edit()
            if self.editor is not None and self.editor.modified:
                self._discarded = False  # edited again after a Discard whose scan change then failed
        self.apply_read_only()

    def tick(self) -> None:
        editor = self.editor
        if self.journal is None or editor is None or self.read_only_reason:
            return
        self.journal.tick(editor)
        if self.journal.last_error != self._last_error:
            self._last_error = self.journal.last_error
            if self._last_error:
                self.c.statusMessage.emit(f"Autosave journal not written: {self._last_error}")

    def flush(self) -> bool:
        """Write the journal now (tests, and before risky operations)."""
        editor = self.editor
        return bool(self.journal is not None and editor is not None and not self.read_only_reason
                    and self.journal.tick(editor, force=True))

    def _on_saved(self, where: str) -> None:
        session = self.c.session
        if session is None or self.journal is None:
            return
        scan, patient = self._scan_and_patient(session)
        self.journal.saved(session.editor)
        if patient is not None and self.journal.patient_dir != patient.resolve():
            # a scan without a dataset was just added to one: its journal and lock move to the new patient
            if self.lock is not None:
                self.lock.release()
            self.journal = Journal(scan, patient, interval_s=self._interval)
            self.lock, _ = self.journal.acquire_lock()
            self.journal.attach(session.editor)

    def _on_discarded(self) -> None:
        self._discarded = True

    # --- recovery --------------------------------------------------------------------------------------------
    def _offer_recovery(self, session) -> None:
        if session is not self.c.session or self.journal is None or self.read_only_reason:
            return
        try:
            rec = self.journal.find_recovery(session.editor.mask)
        except HeartsegError as exc:
            self.window.prompts.error("Unsaved corrections could not be read", str(exc))
            return
        if rec is None:
            return
        if not self.ask_recover(rec.describe()):
            try:
                kept = self.journal.decline(rec)
                self.c.statusMessage.emit(f"Unsaved corrections set aside in {kept}")
            except HeartsegError as exc:
                self.window.prompts.error("Unsaved corrections", str(exc))
            return
        try:
            regions = self.journal.recover_into(session.editor, rec)
        except HeartsegError as exc:
            self.window.prompts.error("Could not recover the unsaved corrections", str(exc))
            return
        self.c.maskChanged.emit(None)
        self.c.historyChanged.emit()
        self.c.reviewChanged.emit()
        self.c.statusMessage.emit(f"Recovered unsaved corrections on {len(regions)} slice(s) — Ctrl+Z undoes "
                                  "the recovery")
        self.recovered.emit(len(regions))
        self.flush()

    def _ask_recover(self, text: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved corrections?", text,
                          QMessageBox.StandardButton.NoButton, self.window)
        recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(recover)
        box.exec()
        return box.clickedButton() is recover

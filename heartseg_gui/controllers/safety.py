"""Never lose a clinician's work: the window's edit lock, autosave journal and recovery prompt.

:class:`EditSafety` watches the controller (no logic of its own beyond calling :mod:`core.store.locking` and
:mod:`core.store.journal`):

* a scan opens -> lock it (the patient folder's ``.heartseg/lock.json``, or the per-user folder for scans without
  a dataset). If another live window holds the lock the scan opens **read-only**: the session's
  ``read_only_reason`` says why (:class:`~heartseg_gui.actions.ActionPolicy` then disables the editing actions),
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
import sys
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel, QMessageBox, QStatusBar, QWidget

from core.errors import HeartsegError
from core.store.journal import DEFAULT_INTERVAL_S, Journal
from core.store.writeback import recover_patient
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.controllers.file_flows import FileFlows
from heartseg_gui.dialogs.prompts import Prompts
from heartseg_gui.state.session import ScanSession

INTERVAL_ENV = "HEARTSEG_JOURNAL_INTERVAL_S"


def journal_interval_s() -> float:
    try:
        return max(0.05, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class EditSafety(QObject):
    """``status_bar`` shows the read-only banner; questions go through ``prompts``; ``parent`` owns the recovery
    question's box."""

    readOnlyChanged = Signal(str)     # the reason, "" when the open scan is editable
    recovered = Signal(int)           # number of slices restored from a journal

    def __init__(self, controller: Controller, files: FileFlows, prompts: Prompts, status_bar: QStatusBar,
                 parent: QWidget):
        super().__init__(parent)
        self._parent = parent
        self.c = controller
        self.prompts = prompts
        self.journal: Optional[Journal] = None
        self.lock = None
        self._session: Optional[ScanSession] = None
        self._discarded = False
        self._last_error: Optional[str] = None
        self.notice = ""  # the last lock take-over / recovery line shown (tests read it)
        self.recovery_pending = False  # a journal's recovery offer is scheduled but not yet made
        self.ask_recover = self._ask_recover   # replaceable: (text) -> bool
        self.banner = QLabel("")
        self.banner.setObjectName("readOnlyBanner")
        self.banner.setStyleSheet("QLabel { background: #b45309; color: white; padding: 1px 6px; }")
        self.banner.setVisible(False)
        status_bar.insertPermanentWidget(0, self.banner)  # permanent: status messages never hide it
        interval = journal_interval_s()
        self.timer = QTimer(self)
        self.timer.setInterval(int(min(1000, max(50, interval * 1000 / 3))))
        self.timer.timeout.connect(self.tick)
        self._interval = interval
        self.c.sessionChanged.connect(self._on_session)
        self.c.historyChanged.connect(self._on_edit)
        self.c.reviewChanged.connect(self._on_edit)
        files.saved.connect(self._on_saved)
        files.discarded.connect(self._on_discarded)

    # --- state of the open scan ------------------------------------------------------------------------------
    @property
    def read_only_reason(self) -> str:
        """Why the open scan is read-only ("" when it is editable or none is open)."""
        return "" if self._session is None else self._session.read_only_reason

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
        self._set_read_only(session, reason or "")
        if reason:
            return
        self._tell_takeover(patient)
        self.journal.attach(session.editor)
        self.timer.start()
        self.recovery_pending = True  # the --screenshot mode waits for the offer (app.run)
        QTimer.singleShot(0, lambda s=session: self._offer_recovery(s))

    def _tell_takeover(self, patient: Optional[Path]) -> None:
        """The lock was just taken: say so when it replaced a damaged or stale one (:attr:`EditLock.message`),
        and, holding it, finish an interrupted save / restore and remove temporaries of killed writes
        (:func:`core.store.writeback.recover_patient`). The line stays in :attr:`notice` and the status bar."""
        notes = [self.lock.message] if self.lock is not None and self.lock.message else []
        if patient is not None and self.lock is not None:
            try:
                notes += recover_patient(patient, min_age_s=0)
            except HeartsegError as exc:
                notes.append(str(exc))
        self.notice = "; ".join(notes)
        if self.notice:
            self.c.show_status(self.notice)

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
    def _set_read_only(self, session: ScanSession, reason: str) -> None:
        session.read_only_reason = reason
        self.banner.setText(f"Read-only: {reason}" if reason else "")
        self.banner.setToolTip("Another heartseg window is editing this scan. Close it there to edit here; "
                               "Export Masks… still works." if reason else "")
        self.banner.setVisible(bool(reason))
        if reason:
            self.c.show_status(f"Opened read-only — {reason}")
        self.readOnlyChanged.emit(reason)

    # --- journal ---------------------------------------------------------------------------------------------
    def _on_edit(self) -> None:
        if self.journal is not None and not self.read_only_reason:
            self.journal.note_edit()
            if self.editor is not None and self.editor.modified:
                self._discarded = False  # edited again after a Discard whose scan change then failed

    def tick(self) -> None:
        editor = self.editor
        if self.journal is None or editor is None or self.read_only_reason:
            return
        self.journal.tick(editor)
        if self.journal.last_error != self._last_error:
            self._last_error = self.journal.last_error
            if self._last_error:
                self.c.show_status(f"Autosave journal not written: {self._last_error}")

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
        try:
            self._offer_recovery_now(session)
        finally:
            self.recovery_pending = False

    def _offer_recovery_now(self, session) -> None:
        if session is not self.c.session or self.journal is None or self.read_only_reason:
            return
        try:
            rec = self.journal.find_recovery(session.editor.mask)
        except HeartsegError as exc:
            self.prompts.error("Unsaved corrections could not be read", str(exc))
            return
        if rec is None:
            return
        answer = self.ask_recover(rec.describe())
        if session is not self.c.session or self.journal is None:
            return  # the scan was replaced or the window closed while the question was open: the journal stays
        if not answer:
            try:
                kept = self.journal.decline(rec)
                self.c.show_status(f"Unsaved corrections set aside in {kept}")
            except HeartsegError as exc:
                self.prompts.error("Unsaved corrections", str(exc))
            return
        try:
            regions = self.journal.recover_into(session.editor, rec)
        except HeartsegError as exc:
            self.prompts.error("Could not recover the unsaved corrections", str(exc))
            return
        self.c.edited_elsewhere(regions)
        self.c.show_status(f"Recovered unsaved corrections on {len(regions)} slice(s) — Ctrl+Z undoes "
                                  "the recovery")
        self.recovered.emit(len(regions))
        self.flush()
        if self.prompts.quiet:  # --screenshot: nobody was asked; the journal stays until the window saves
            print(f"heartseg: recovered unsaved corrections of a crashed session on {len(regions)} slice(s); "
                  f"they stay in {rec.path} until they are saved in the window", file=sys.stderr)

    def _ask_recover(self, text: str) -> bool:
        if self.prompts.quiet:  # --screenshot mode: no modal question; show the work, keep the journal
            return True
        box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved corrections?", text,
                          QMessageBox.StandardButton.NoButton, self._parent)
        recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(recover)
        box.exec()
        return box.clickedButton() is recover

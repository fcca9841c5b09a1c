"""Autosave journal: unsaved corrections survive a crash, a kill or a power cut (at most the last few seconds).

Where (see :func:`state_dirs`):

* a dataset patient (Kaggle layout): ``<patient>/.heartseg/journal.json`` -- next to the masks it belongs to;
* any other scan (NIfTI, DICOM, PNG folder), or a patient folder that cannot be written: a per-user folder
  ``<state>/journals/scan-<sha256 of the scan's absolute path, 20 hex>/journal.json`` where ``<state>`` is
  ``$HEARTSEG_STATE_DIR``, else ``$HEARTSEG_SETTINGS_DIR/state``, else ``$XDG_STATE_HOME/heartseg``, else
  ``~/.local/state/heartseg``.

What: one JSON file, always replaced atomically (:mod:`core.atomic`), so a kill while journalling leaves the
previous complete journal::

    {"format": "heartseg-journal", "version": 1, "scan": "<absolute scan path>", "patient_dir": "<path or null>",
     "written_at": "<ISO UTC>", "pid": 4242, "host": "ws-12",
     "base_sha256": "<sha256 of the saved mask the edits were made on>",
     "edits": <core.editing.MaskEditor.journal_payload()>}

``edits`` holds the *whole* working mask of every slice changed since the last save (an open brush stroke
included) plus every review state, so :meth:`Journal.recover_into` restores the edits exactly, whatever undo
history is lost.

When: :meth:`Journal.tick` is called often (a GUI timer, e.g. once a second) and writes when there are unsaved
changes not yet journalled and either ``interval_s`` (default 3 s) passed since the last write or
``every_n_edits`` (default 5) edits were noted (:meth:`Journal.note_edit`). A failing write (full disk) never
raises from :meth:`~Journal.tick`; :attr:`Journal.last_error` says why.

Never deleted unless saved or discarded: :meth:`Journal.clear` (after a save or a deliberate discard) removes only
journals this :class:`Journal` wrote or recovered into the editor -- never one of an earlier session that was not
yet offered, applied or declined -- and :meth:`Journal.write` sets such a journal aside rather than replace it.
A journal that is set aside goes to a new dated name beside it, ``journal.<why>-<YYYYmmdd-HHMMSS>[-n].json``, never
over an earlier one: ``declined`` (the user chose not to recover, :meth:`Journal.decline`), ``damaged`` (it cannot
be read: :meth:`Journal.find_recovery` raises :class:`JournalKeptError` saying where it went), ``unapplied`` (it
does not fit the scan: :meth:`Journal.recover_into` raises the same) and ``kept`` (an earlier session's journal
found in the way of a write). Fields that only say where a journal came from (pid, host, time, base digest) are
validated; a wrong one is treated as unknown (the journal is then offered, as that of a dead process), never as a
crash. Reading, validating and setting aside a journal file live in ``core.store._journal_record`` (re-exported
here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.atomic import write_text_atomic
from core.errors import HeartsegError
from core.resources import user_dir
from core.store._journal_record import (
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    JournalKeptError,
    Recovery,
    journal_origin,
    mask_digest,
    read_journal,
    set_aside,
)
from core.store.layout import DECLINED_FILE, JOURNAL_FILE, LOCK_FILE, state_dir
from core.store.locking import EditLock, LockedError, acquire_lock, pid_alive

DEFAULT_INTERVAL_S = 3.0
DEFAULT_EVERY_N_EDITS = 5


def user_state_dir() -> Path:
    """The per-user folder for journals of scans that have no dataset folder of their own:
    ``$HEARTSEG_STATE_DIR``, else ``$HEARTSEG_SETTINGS_DIR/state``, else ``$XDG_STATE_HOME/heartseg``, else
    ``~/.local/state/heartseg``."""

    return user_dir("HEARTSEG_STATE_DIR", "state", "XDG_STATE_HOME", ".local/state")


def _abs(path: str | Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # symlink loops
        return Path(os.path.abspath(path))


def scan_key(scan_path: str | Path) -> str:
    """20 hex digits identifying a scan by its absolute path."""
    return hashlib.sha256(str(_abs(scan_path)).encode("utf-8", "surrogateescape")).hexdigest()[:20]


def user_scan_dir(scan_path: str | Path) -> Path:
    return user_state_dir() / "journals" / f"scan-{scan_key(scan_path)}"


def state_dirs(scan_path: str | Path, patient_dir: str | Path | None = None) -> list[Path]:
    """Folders for this scan's journal and lock, preferred first: ``<patient>/.heartseg`` (when the scan is a
    dataset patient) then the per-user folder."""
    dirs = []
    if patient_dir is not None:
        dirs.append(state_dir(patient_dir))
    dirs.append(user_scan_dir(patient_dir if patient_dir is not None else scan_path))
    return dirs


class Journal:
    """The autosave journal of one open scan (Qt-free; the window drives :meth:`tick` from a timer).

    ``scan_path``: what was opened; ``patient_dir``: the dataset patient folder when there is one (journal and
    lock go there). ``clock``: seconds, monotonic (tests pass a fake).
    """

    def __init__(self, scan_path: str | Path, patient_dir: str | Path | None = None, *,
                 interval_s: float = DEFAULT_INTERVAL_S, every_n_edits: int = DEFAULT_EVERY_N_EDITS,
                 clock: Callable[[], float] = time.monotonic):
        self.scan_path = _abs(scan_path)
        self.patient_dir = None if patient_dir is None else _abs(patient_dir)
        self.dirs = state_dirs(self.scan_path, self.patient_dir)
        self.interval_s = float(interval_s)
        self.every_n_edits = max(1, int(every_n_edits))
        self.clock = clock
        self.path: Path | None = None      # where the last write went
        self.base_sha256: str | None = None
        self.last_error: str | None = None
        self.writes = 0
        self._edits_since_write = 0
        self._last_write_t = clock()
        self._written_key = None
        self._owned: set[Path] = set()        # journals this object wrote or recovered: the only ones clear() removes
        self.set_aside: list[Path] = []       # where journals in the way were kept (the window may say so)

    # --- lock ------------------------------------------------------------------------------------------------
    def acquire_lock(self) -> tuple[EditLock | None, str | None]:
        """Lock this scan for editing: ``(lock, None)``, or ``(None, reason)`` when another live window edits it.

        The lock goes where the journal goes (the patient folder, else the per-user folder); when no folder can
        be written the scan is still editable (``(None, None)``) -- saving will then say why it cannot.
        """
        for folder in self.dirs:
            try:
                return acquire_lock(folder.parent, lock_path=folder / LOCK_FILE, what=str(self.scan_path)), None
            except LockedError as exc:
                return None, exc.reason
            except HeartsegError:
                continue
        return None, None

    # --- writing ---------------------------------------------------------------------------------------------
    def attach(self, editor) -> None:
        """Remember the saved state ``editor`` holds now (call right after opening and after every save)."""
        self.base_sha256 = mask_digest(editor.mask)
        self._written_key = self._key(editor)
        self._edits_since_write = 0
        self._last_write_t = self.clock()

    def note_edit(self, n: int = 1) -> None:
        """Count an edit (a finished stroke, a slice tool, undo/redo, a review key)."""
        self._edits_since_write += int(n)

    @staticmethod
    def _key(editor):
        return (editor.revision, tuple(editor.review_states), editor.stroke_active,
                editor.undo_label if editor.stroke_active else None)

    def due(self, editor) -> bool:
        if not editor.modified:
            return False
        if editor.stroke_active:
            pass  # an open drag changes pixels without changing the revision: journal it on time
        elif self._key(editor) == self._written_key:
            return False
        return (self._edits_since_write >= self.every_n_edits
                or self.clock() - self._last_write_t >= self.interval_s)

    def tick(self, editor, *, force: bool = False) -> bool:
        """Write the journal when due (or ``force``); clear it when the editor holds no unsaved changes.
        Never raises for I/O problems: returns False and sets :attr:`last_error`."""
        try:
            if not editor.modified:
                if self._written_key is not None and self.path is not None:
                    self.clear()
                return False
            if not (force or self.due(editor)):
                return False
            self.write(editor)
            return True
        except HeartsegError as exc:
            self.last_error = str(exc)
            return False

    def write(self, editor) -> Path:
        """Journal ``editor``'s unsaved work now (atomic). Tries the preferred folder, then the per-user one."""
        record = {"format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, "scan": str(self.scan_path),
                  "patient_dir": None if self.patient_dir is None else str(self.patient_dir),
                  "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "pid": os.getpid(), "host": socket.gethostname(), "base_sha256": self.base_sha256,
                  "edits": editor.journal_payload()}
        text = json.dumps(record, separators=(",", ":"))
        errors = []
        for folder in self.dirs:
            target = folder / JOURNAL_FILE
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if target not in self._owned and os.path.lexists(target):  # an earlier session's: keep it
                    self.set_aside.append(set_aside(target, "kept"))
                write_text_atomic(target, text)
            except OSError as exc:
                errors.append(HeartsegError(f"cannot write the edit journal: {exc.strerror or exc}", target))
                continue
            except HeartsegError as exc:
                errors.append(exc)
                continue
            if self.path is not None and self.path != target and self.path in self._owned:
                with contextlib.suppress(OSError):
                    self.path.unlink()
                self._owned.discard(self.path)
            self.path = target
            self._owned.add(target)
            self.writes += 1
            self.last_error = None
            self._written_key = self._key(editor)
            self._edits_since_write = 0
            self._last_write_t = self.clock()
            return target
        raise errors[0]

    def clear(self) -> None:
        """Remove this scan's journal (after a save, or when the user discards the edits) -- only a journal this
        object wrote or recovered; one of an earlier session not yet recovered or declined stays."""
        for path in sorted(self._owned):
            with contextlib.suppress(OSError):
                path.unlink()
        self._owned.clear()
        self.path = None
        self._written_key = None
        self._edits_since_write = 0

    def saved(self, editor) -> None:
        """The editor's state was just saved: clear the journal and take the new saved state as the base."""
        self.clear()
        self.attach(editor)

    # --- recovery --------------------------------------------------------------------------------------------
    def find_recovery(self, saved_mask: np.ndarray | None = None) -> Recovery | None:
        """The journal left by an earlier session of this scan, or ``None``.

        Journals of a process that is still running on this host (another window editing the scan) are not
        offered. A damaged journal is set aside (``journal.damaged-<date>.json``) and :class:`JournalKeptError`
        names it and says where it went (so the user hears about it and nothing overwrites it). Damaged
        origin fields (pid, host, time, base digest) are treated as unknown: the journal is offered.
        ``saved_mask``: the mask as opened now, to tell whether it is still the base the edits were made on.
        """
        for folder in self.dirs:
            path = folder / JOURNAL_FILE
            if not os.path.lexists(path):
                continue
            try:
                data = read_journal(path)
            except HeartsegError as exc:
                problem = str(exc).removeprefix(f"{path}: ")
                try:
                    kept = set_aside(path, "damaged")
                except OSError:
                    kept = None
                raise JournalKeptError(problem, path, kept) from exc
            pid, host, written, base, problem = journal_origin(data)
            if pid is not None and host == socket.gethostname() and pid != os.getpid() and pid_alive(pid):
                continue
            matches = None if saved_mask is None or not base else (mask_digest(saved_mask) == base)
            edits = data["edits"]
            slices = edits.get("slices", [])
            return Recovery(path, edits, written, len(slices) if isinstance(slices, list) else 0, matches, problem)
        return None

    def recover_into(self, editor, recovery: Recovery) -> list:
        """Apply the recovered edits to ``editor`` (which holds the saved mask): one undo step "Recover unsaved
        edits", review states restored. If they do not fit, the journal is set aside
        (``journal.unapplied-<date>.json``) and :class:`JournalKeptError` names it and where it went."""
        try:
            regions = editor.apply_journal(recovery.payload)
        except Exception as exc:
            problem = str(exc) if isinstance(exc, HeartsegError) else \
                f"the edit journal does not fit this scan ({type(exc).__name__})"
            try:
                kept = set_aside(recovery.path, "unapplied")
            except OSError:
                kept = None
            raise JournalKeptError(f"cannot recover the unsaved edits: {problem}", recovery.path, kept) from exc
        self.path = recovery.path
        self._owned.add(recovery.path)
        return regions

    def decline(self, recovery: Recovery) -> Path:
        """The user chose not to recover: keep the journal as ``journal.declined-<date>.json`` (never over an
        earlier declined one) rather than deleting a clinician's work outright. Returns where it went."""
        try:
            return set_aside(recovery.path, "declined")
        except OSError as exc:
            raise HeartsegError(f"cannot set the edit journal aside: {exc.strerror or exc}", recovery.path) from exc


__all__ = ["DECLINED_FILE", "DEFAULT_EVERY_N_EDITS", "DEFAULT_INTERVAL_S", "JOURNAL_FILE", "JOURNAL_FORMAT",
           "JOURNAL_VERSION", "LOCK_FILE", "Journal", "JournalKeptError", "Recovery", "journal_origin", "mask_digest",
           "read_journal", "scan_key", "set_aside", "state_dirs", "user_scan_dir", "user_state_dir"]

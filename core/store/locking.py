"""Edit locks: one window edits a patient (or a scan) at a time; every other window opens it read-only.

A lock is a small JSON file, by default ``<patient>/.heartseg/lock.json`` (for scans without a dataset it lives in
the per-user journal folder of that scan, see :func:`core.store.journal.journal_dir`)::

    {"format": "heartseg-lock", "version": 1, "pid": 4242, "host": "ws-12", "user": "anna",
     "created_at": "2026-11-26T21:50:00+00:00", "process_start": "123456", "token": "<random hex>",
     "what": "/data/train/p1"}

* :func:`acquire_lock` creates it (atomically, under a short ``flock`` on its folder so two openers racing
  for a stale lock cannot both win) and returns an :class:`EditLock`; while another live process holds it,
  :class:`LockedError` (a :class:`~core.errors.HeartsegError`) says who and since when.
* A lock is *stale* when it was written on this host by a process that no longer exists (or whose pid now
  belongs to a process started later -- pid reuse is detected through ``/proc/<pid>/stat`` where available),
  or when the file is damaged. Stale locks are taken over silently; :attr:`EditLock.took_over` tells whether
  that happened (the window can say so). A lock from another host is never considered stale (we cannot see
  its processes); ``force=True`` takes it anyway.
* :func:`open_for_editing` is the one call a window needs: ``(lock or None, read_only_reason or None)``.

Only files are used (no daemon), so a SIGKILLed process leaves a lock that the next opener detects as stale.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from core.atomic import write_text_atomic
from core.errors import HeartsegError

LOCK_FORMAT = "heartseg-lock"
LOCK_FILE = "lock.json"

try:  # POSIX only; elsewhere the takeover race is merely narrower, not prevented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock (as written in the lock file)."""

    pid: int
    host: str
    user: str
    created_at: str
    process_start: str
    token: str
    what: str = ""

    def describe(self) -> str:
        """One line for the user, e.g. ``anna (process 4242 on ws-12) since 2026-11-26 21:50 UTC``."""
        when = self.created_at.replace("T", " ")[:16] + " UTC" if self.created_at else "an unknown time"
        return f"{self.user or 'another user'} (process {self.pid} on {self.host or 'an unknown host'}) since {when}"


class LockedError(HeartsegError):
    """The folder is open for editing elsewhere; ``owner`` says by whom."""

    def __init__(self, owner: LockOwner, lock_path: Path):
        self.owner = owner
        self.lock_path = Path(lock_path)
        super().__init__(f"open for editing by {owner.describe()}; opened read-only", lock_path)

    @property
    def reason(self) -> str:
        """The message without the path: what a window shows beside "read-only"."""
        return f"Open for editing by {self.owner.describe()}."


def _host() -> str:
    return socket.gethostname()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return ""


def process_start_time(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot (``/proc``), or ``""`` where unknown."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return ""


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists on this host (zombies count as dead where ``/proc`` says so)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def lock_path_for(folder: str | Path) -> Path:
    """Where the lock of a dataset patient folder lives: ``<folder>/.heartseg/lock.json``."""
    return Path(folder) / ".heartseg" / LOCK_FILE


def read_lock(lock_path: str | Path) -> Optional[LockOwner]:
    """The owner written in ``lock_path``; ``None`` when there is no lock file. A damaged lock file gives an
    owner with ``pid = -1`` (treated as stale)."""
    lock_path = Path(lock_path)
    try:
        raw = lock_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HeartsegError(f"cannot read the lock file: {exc.strerror or exc}", lock_path) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
            raise ValueError("not a heartseg lock")
        return LockOwner(int(data["pid"]), str(data.get("host", "")), str(data.get("user", "")),
                         str(data.get("created_at", "")), str(data.get("process_start", "")),
                         str(data.get("token", "")), str(data.get("what", "")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return LockOwner(-1, "", "", "", "", "")


def is_stale(owner: LockOwner) -> bool:
    """A lock left by a dead process on this host (or a damaged lock file)."""
    if owner.pid <= 0:
        return True
    if owner.host != _host():
        return False
    if not pid_alive(owner.pid):
        return True
    start = process_start_time(owner.pid)
    return bool(owner.process_start and start and start != owner.process_start)  # pid reused


class EditLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) removes the lock file if it is still ours."""

    def __init__(self, path: Path, owner: LockOwner, took_over: Optional[LockOwner], created_dir: bool = False):
        self.path = path
        self.owner = owner
        self.took_over = took_over  # the stale owner this lock replaced, if any
        self._created_dir = created_dir
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    def still_ours(self) -> bool:
        """True while the lock file on disk is this lock (another window may have forced it away)."""
        current = read_lock(self.path)
        return current is not None and current.token == self.owner.token

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(OSError, HeartsegError), _guard(self.path.parent):
            if self.still_ours():
                self.path.unlink()
        if self._created_dir:  # leave no empty .heartseg folder behind in a dataset that was only viewed
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()

    def __enter__(self) -> "EditLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.release()


@contextlib.contextmanager
def _guard(folder: Path):
    """Exclusive ``flock`` on the lock's folder itself for the few milliseconds of a check-and-write (no extra
    file is left behind; where folders cannot be flocked the race is only narrower, not excluded)."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing drops the flock


def acquire_lock(folder: str | Path, *, lock_path: str | Path | None = None, force: bool = False,
                 what: str = "") -> EditLock:
    """Lock ``folder`` for editing (lock file at ``lock_path``, default :func:`lock_path_for`).

    Raises :class:`LockedError` while another live process holds it (``force=True`` takes it anyway), and
    :class:`HeartsegError` naming the folder when no lock can be written there (read-only folder, full disk).
    """
    path = Path(lock_path) if lock_path is not None else lock_path_for(folder)
    created_dir = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HeartsegError(f"cannot lock for editing: {exc.strerror or exc}", path.parent) from exc
    me = LockOwner(os.getpid(), _host(), _user(), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   process_start_time(os.getpid()), secrets.token_hex(8), what or str(folder))
    try:
        with _guard(path.parent):
            current = read_lock(path)
            if current is not None and not force and not is_stale(current):
                raise LockedError(current, path)
            write_text_atomic(path, json.dumps({"format": LOCK_FORMAT, "version": 1, "pid": me.pid,
                                                "host": me.host, "user": me.user, "created_at": me.created_at,
                                                "process_start": me.process_start, "token": me.token,
                                                "what": me.what}, indent=1))
    except LockedError:
        raise
    except (OSError, HeartsegError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise HeartsegError("cannot lock for editing: the folder is read-only", path.parent) from exc
        why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
        raise HeartsegError(f"cannot lock for editing: {why}", path.parent) from exc
    return EditLock(path, me, current, created_dir)


def open_for_editing(folder: str | Path, *, lock_path: str | Path | None = None
                     ) -> tuple[Optional[EditLock], Optional[str]]:
    """``(lock, None)`` when ``folder`` may be edited here, else ``(None, reason)`` with a one-line reason for
    opening it read-only (another window edits it, or the folder cannot be written)."""
    try:
        return acquire_lock(folder, lock_path=lock_path), None
    except LockedError as exc:
        return None, exc.reason
    except HeartsegError as exc:
        return None, str(exc)

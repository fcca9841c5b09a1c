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
  or when the file is damaged. Every field is validated (:func:`lock_problem`): a lock file that is not a regular
  file, larger than 64 KiB, not UTF-8 JSON, or with a pid that is not an integer in 1 .. 2**31-1, an empty or
  non-numeric ``process_start`` on this host, a host, user, time or token of the wrong type or form, is *damaged*
  and therefore stale -- never an exception, never "locked for good". Stale locks are taken over;
  :attr:`EditLock.took_over` tells whether that happened and :attr:`EditLock.message` says it in one line (the
  window shows it). A lock from another host is never considered stale (we cannot see
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
import stat as stat_mod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from core.atomic import write_text_atomic
from core.errors import HeartsegError
from core.store.layout import lock_path as default_lock_path

LOCK_FORMAT = "heartseg-lock"
#: A lock file larger than this is damaged (a real one is ~300 bytes).
MAX_LOCK_BYTES = 64 * 1024
#: Largest pid any system gives (pid_t is a signed 32-bit integer).
PID_MAX = 2**31 - 1

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
    problem: str = ""  # why the lock file is damaged ("" when it is valid)

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


def _valid_pid(pid) -> bool:
    return type(pid) is int and 0 < pid <= PID_MAX


def process_start_time(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot (``/proc``), or ``""`` where unknown."""
    if not _valid_pid(pid):
        return ""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return ""


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists on this host (zombies count as dead where ``/proc`` says so).
    Anything but an integer in 1 .. :data:`PID_MAX` is no process (never OverflowError)."""
    if not _valid_pid(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    except (OSError, OverflowError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _text_ok(value, *, max_len: int, empty: bool) -> bool:
    return (isinstance(value, str) and len(value) <= max_len and (empty or bool(value))
            and all(ch.isprintable() for ch in value))


def lock_problem(data) -> str:
    """Why the parsed lock record ``data`` is not a valid heartseg lock (``""`` when it is)."""
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        return "not a heartseg lock"
    if type(data.get("version")) is not int or data["version"] != 1:
        return f"lock version {data.get('version')!r} is not supported"
    pid = data.get("pid")
    if not _valid_pid(pid):
        return f"pid {pid!r} is not a process id"
    host = data.get("host")
    if not _text_ok(host, max_len=255, empty=False) or any(ch.isspace() for ch in host):
        return f"host {host!r} is not a host name"
    if not _text_ok(data.get("user", ""), max_len=256, empty=True):
        return "the user name is not text"
    created = data.get("created_at")
    try:
        if not _text_ok(created, max_len=64, empty=False):
            raise ValueError
        datetime.fromisoformat(created)
    except (ValueError, TypeError):
        return f"created_at {created!r} is not a time"
    start = data.get("process_start")
    if not isinstance(start, str) or len(start) > 24 or (start and not start.isdigit()):
        return f"process_start {start!r} is not a process start time"
    if not start and host == _host() and process_start_time(os.getpid()):
        return "process_start is empty (every lock written on this computer has one)"
    token = data.get("token")
    if not _text_ok(token, max_len=128, empty=False) or any(ch.isspace() for ch in token):
        return "the token is missing or not text"
    if not _text_ok(data.get("what", ""), max_len=4096, empty=True):
        return "the locked path is not text"
    return ""


def _damaged(problem: str) -> LockOwner:
    return LockOwner(-1, "", "", "", "", "", "", problem)


def read_lock(lock_path: str | Path) -> Optional[LockOwner]:
    """The owner written in ``lock_path``; ``None`` when there is no lock file. A damaged lock file (see
    :func:`lock_problem`; also a folder, a FIFO or a huge file) gives an owner with ``pid = -1`` and ``problem``
    saying why (treated as stale). Only a lock file that exists but cannot be read raises
    :class:`HeartsegError`."""
    lock_path = Path(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return _damaged("the lock file is a folder")
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOTDIR):
            return _damaged(f"the lock file cannot be opened ({exc.strerror})")
        raise HeartsegError(f"cannot read the lock file: {exc.strerror or exc}", lock_path) from exc
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            return _damaged("the lock file is not a regular file")
        if st.st_size > MAX_LOCK_BYTES:
            return _damaged(f"the lock file is {st.st_size} bytes")
        raw = os.read(fd, MAX_LOCK_BYTES + 1)
    except OSError as exc:
        raise HeartsegError(f"cannot read the lock file: {exc.strerror or exc}", lock_path) from exc
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _damaged("the lock file is not valid JSON" if raw.strip() else "the lock file is empty")
    problem = lock_problem(data)
    if problem:
        return _damaged(problem)
    return LockOwner(data["pid"], data["host"], data.get("user", ""), data["created_at"], data["process_start"],
                     data["token"], data.get("what", ""))


def is_stale(owner: LockOwner) -> bool:
    """A lock left by a dead process on this host, or a damaged lock file."""
    if owner.problem or not _valid_pid(owner.pid):
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

    @property
    def message(self) -> str:
        """One line for the window when a stale or damaged lock was taken over (``""`` otherwise)."""
        old = self.took_over
        if old is None:
            return ""
        if old.problem:
            return f"A damaged lock file was replaced ({old.problem}): {self.path}"
        return f"Took over the lock of {old.describe()} (no longer running, or forced): {self.path}"

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

    def __enter__(self) -> EditLock:
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
    """Lock ``folder`` for editing (lock file at ``lock_path``, default :func:`core.store.layout.lock_path`).

    Raises :class:`LockedError` while another live process holds it (``force=True`` takes it anyway), and
    :class:`HeartsegError` naming the folder when no lock can be written there (read-only folder, full disk).
    """
    path = Path(lock_path) if lock_path is not None else default_lock_path(folder)
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

"""The journal file of :mod:`core.store.journal` on disk: reading and validating a record, describing one found on
open (:class:`Recovery`), and setting one aside under a dated name, never over an earlier one (the format and the
set-aside names are in :mod:`core.store.journal`'s docstring)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat as stat_mod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.errors import HeartsegError
from core.store.locking import PID_MAX

JOURNAL_FORMAT = "heartseg-journal"
JOURNAL_VERSION = 1


def mask_digest(mask: np.ndarray) -> str:
    """sha256 over a mask's shape and 0/1 bytes (identifies the saved state a journal was written against)."""
    m = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
    h = hashlib.sha256(repr(tuple(m.shape)).encode())
    h.update(m.tobytes())
    return h.hexdigest()


@dataclass
class Recovery:
    """A journal found on open: unsaved edits of an earlier session."""
    path: Path
    payload: dict                # the ``edits`` of the journal (a MaskEditor journal payload)
    written_at: str
    n_changed_slices: int
    base_matches: bool | None  # the saved masks are still those the edits were made on (None: unknown)
    problem: str = ""             # fields of the record that were damaged and treated as unknown

    def describe(self) -> str:
        when = _local_time(self.written_at) if self.written_at else "an earlier session"
        text = (f"Unsaved corrections from {when} were found ({self.n_changed_slices} edited slice"
                f"{'s' if self.n_changed_slices != 1 else ''}). Recover them?")
        if self.base_matches is False:
            text += " Note: the saved masks changed since; recovered slices replace them."
        if self.problem:
            text += f" (Part of its record was damaged and is ignored: {self.problem}.)"
        return text


def _local_time(iso: str) -> str:
    """A journal's UTC stamp (ISO 8601) as the reader's local time, ``YYYY-MM-DD HH:MM:SS`` and the zone name."""
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso[:19].replace("T", " ") + " UTC"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


class JournalKeptError(HeartsegError):
    """A journal could not be read or applied; it was kept aside at :attr:`kept` (``None``: left in place)."""

    def __init__(self, message: str, path: Path, kept: Path | None):
        self.kept = kept
        where = f"it is kept as {kept}" if kept is not None else "it was left where it is"
        super().__init__(f"{message}; {where} (nothing was deleted)", path)


def set_aside(path: Path, why: str) -> Path:
    """Move journal ``path`` to ``journal.<why>-<UTC date-time>[-n].json`` beside it, never over an existing file.
    Raises ``OSError`` when it cannot be moved (it then stays where it is)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        target = path.with_name(f"journal.{why}-{stamp}{'' if n == 0 else f'-{n}'}.json")
        try:
            os.link(path, target)  # fails if the target exists: an earlier one is never replaced
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
            if os.path.lexists(target):
                continue
            os.rename(path, target)  # no hard links on this file system
            return target
        os.unlink(path)
        return target
    raise OSError(errno.EEXIST, "too many set-aside journals", str(path))


def _read_regular(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_journal(path: str | Path) -> dict:
    """The journal record at ``path``; :class:`HeartsegError` naming it when it is missing or damaged."""
    path = Path(path)
    try:
        data = json.loads(_read_regular(path).decode("utf-8"))
    except FileNotFoundError as exc:
        raise HeartsegError("no edit journal here", path) from exc
    except IsADirectoryError as exc:
        raise HeartsegError("the edit journal is damaged (a folder, not a file)", path) from exc
    except OSError as exc:
        raise HeartsegError(f"cannot read the edit journal: {exc.strerror or exc}", path) from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HeartsegError("the edit journal is damaged (not valid JSON)", path) from exc
    if not isinstance(data, dict) or data.get("format") != JOURNAL_FORMAT or not isinstance(data.get("edits"), dict):
        raise HeartsegError("the edit journal is damaged (not a heartseg edit journal)", path)
    if type(data.get("version")) is not int or data.get("version") != JOURNAL_VERSION:
        raise HeartsegError(f"the edit journal is damaged (version {data.get('version')!r} is not supported)", path)
    return data


def journal_origin(data: dict) -> tuple[int | None, str, str, str | None, str]:
    """``(pid, host, written_at, base_sha256, problem)`` of a journal record, each validated: a damaged field
    becomes unknown (``None`` / ``""``) and ``problem`` names it."""
    problems = []
    pid = data.get("pid")
    if not (type(pid) is int and 0 < pid <= PID_MAX):
        problems.append(f"pid {pid!r}")
        pid = None
    host = data.get("host")
    if not (isinstance(host, str) and 0 < len(host) <= 255 and host.isprintable()):
        problems.append(f"host {host!r}")
        host = ""
    written = data.get("written_at")
    try:
        if not (isinstance(written, str) and len(written) <= 64 and written.isprintable()):
            raise ValueError
        datetime.fromisoformat(written)
    except (ValueError, TypeError):
        problems.append(f"written_at {written!r}")
        written = ""
    base = data.get("base_sha256")
    if base is not None and not (isinstance(base, str) and len(base) == 64
                                 and all(c in "0123456789abcdef" for c in base)):
        problems.append("base_sha256")
        base = None
    return pid, host, written, base, ", ".join(p[:60] for p in problems)


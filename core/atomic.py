"""Atomic file writes: temporary file in the same folder, fsync, ``os.replace``, fsync of the folder.

A reader (or a crash at any moment) sees either the complete old file or the complete new one, never a torn
file. Every file heartseg writes (masks, sidecars, journals, model versions, exports) goes through here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from core.errors import HeartsegError
from core.types import CancelToken, check_cancel

_HASH_CHUNK = 1 << 20


def file_sha256(path: str | Path, cancel: CancelToken | None = None) -> str:
    """Streaming SHA-256 of ``path`` (1 MiB chunks, ``cancel`` checked per chunk), lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            check_cancel(cancel)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of ``data`` in memory, lower-case hex (:func:`file_sha256` of a file with these bytes)."""
    return hashlib.sha256(data).hexdigest()


def now_iso() -> str:
    """The current UTC time to the second, ISO 8601 (``2026-12-01T22:50:34+00:00``): every record's stamp."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_umask() -> int:
    try:  # Linux: readable without changing it
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # once, at import time (before any worker thread exists)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _mode_for(target: Path) -> int:
    """The mode a new file gets: the existing target's, else what a plain ``open()`` would create."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    The caller writes the whole file to the yielded path (any writer that takes a file name: cv2.imwrite,
    nibabel.save, model.save ...). On an exception the temporary file is removed and ``target`` is untouched.
    Raises :class:`HeartsegError` naming ``target`` when the folder is missing, read-only or full.
    """
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        raise HeartsegError("cannot save: the folder does not exist", folder)
    # keep the real extension last so writers that choose a format by suffix still work
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{''.join(target.suffixes)}",
                                        dir=folder)
    except OSError as exc:
        raise HeartsegError(f"cannot save: {exc.strerror or exc}", target) from exc
    tmp = Path(tmp_name)
    try:
        # mkstemp creates the file 0600; give the result the target's mode, or what a plain open() would
        os.fchmod(fd, _mode_for(target))
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise HeartsegError(f"cannot save: {exc.strerror or exc}", target) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))


def write_with_atomic(target: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result over ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)


def write_many_atomic(items) -> None:
    """Write several files all-or-nothing as far as the file system allows.

    ``items``: ``(target, bytes)`` pairs. Phase 1 writes and fsyncs every file to a temporary beside its target;
    if any of that fails (full disk, read-only or missing folder) every temporary is removed and no target has
    changed. Phase 2 renames them into place (renames need no space); a crash during phase 2 leaves each file
    complete, old or new. Raises :class:`HeartsegError` naming the file that failed.
    """
    staged: list[tuple[Path, Path]] = []

    def discard() -> None:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()

    target = None
    try:
        for target, data in items:
            target = Path(target)
            if not target.parent.is_dir():
                raise HeartsegError("cannot save: the folder does not exist", target.parent)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{''.join(target.suffixes)}",
                                            dir=target.parent)
            staged.append((Path(tmp_name), target))
            try:
                with contextlib.suppress(OSError):
                    os.fchmod(fd, _mode_for(target))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        discard()
        raise HeartsegError(f"cannot save: {exc.strerror or exc}", target) from exc
    except BaseException:
        discard()
        raise
    folders = set()
    for k, (tmp, target) in enumerate(staged):
        try:
            os.replace(tmp, target)
        except OSError as exc:
            for later, _ in staged[k:]:
                with contextlib.suppress(OSError):
                    later.unlink()
            raise HeartsegError(f"cannot save: {exc.strerror or exc}", target) from exc
        folders.add(target.parent)
    for folder in folders:
        _fsync_dir(folder)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out a matplotlib figure, write it atomically as PNG to ``path`` and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)


def write_csv_atomic(path: str | Path, columns, rows, lineterminator: str = "\r\n") -> Path:
    """Write ``rows`` (dicts keyed by ``columns``) as a CSV with a header, atomically."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator=lineterminator)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return Path(path)


"""Output paths never land inside, on, or around an input: one check every command and export dialog calls first.

:func:`check_output_path` refuses (with one :class:`~core.errors.HeartsegError` line naming the path) an output
file or folder that

* **is** an input (a scan folder, a Kaggle patient, a dataset root, a NIfTI / DICOM file, a mask file),
* **lies inside** one (``P/image``, ``P/mask``, ``R/p1/image``, ``P/.heartseg/...``), or
* **contains** one (``--out`` the folder that holds the scan, or ``/``),

and any output inside a ``.heartseg`` folder (heartseg's own state: journal, lock, versions). When an input is a
patient's ``image/`` or ``mask/`` folder, its sibling ``image/``, ``mask/`` and ``.heartseg/`` folders are inputs too
(predicting ``P/image`` into ``P/mask`` would replace the dataset's masks). Symbolic links are resolved and existing
folders are also compared by device and inode, so a link, a bind mount or another spelling of the same folder is
caught. Nothing is created or read beyond ``stat``.

Only Save writes into a scan's own folders; it does not go through here.

:func:`staged_output` then makes a command's outputs all-or-nothing: they are written into a hidden staging folder
inside ``--out`` and moved into place (renames on one file system: no new data) only when every one is complete.
A full disk, a read-only folder, a cancel or a crash mid-write leaves ``--out`` as it was (a folder the command
created is removed again), and the one-line error says what happened.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

from core.errors import HeartsegError
from core.store.layout import STATE_DIR

#: Folder names of a Kaggle-layout patient whose siblings are protected with them.
_PATIENT_PARTS = ("image", "images", "mask", "masks", STATE_DIR)


def _real(path: str | Path) -> Path:
    """Absolute path with every existing symbolic link resolved (never raises, loops included)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _identity(path: Path) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _chain(path: Path) -> list[tuple[int, int]]:
    """Identities of ``path`` (if it exists) and of every existing folder above it."""
    out = []
    for p in (path, *path.parents):
        ident = _identity(p)
        if ident is not None:
            out.append(ident)
    return out


def protected_paths(inputs: Iterable[str | Path | None]) -> list[tuple[Path, str]]:
    """``(resolved path, how to name it)`` of everything an output must stay clear of, for these inputs
    (``None`` entries are skipped)."""
    seen: dict[str, tuple[Path, str]] = {}
    for given in inputs:
        if given is None:
            continue
        real = _real(given)
        seen.setdefault(str(real), (real, f"the input {real}"))
        if real.name.lower() in _PATIENT_PARTS and real.parent != real:
            names = set(_PATIENT_PARTS)
            try:  # the same names in another case (Image/, MASK/)
                names |= {e.name for e in os.scandir(real.parent) if e.name.lower() in _PATIENT_PARTS}
            except OSError:
                pass
            for sibling in sorted(names):
                cand = _real(real.parent / sibling)
                seen.setdefault(str(cand), (cand, f"the {sibling} folder of the input's patient {real.parent}"))
    return list(seen.values())


def _relation(out: Path, protected: Path) -> Optional[str]:
    """How ``out`` collides with ``protected``: ``"is"``, ``"inside"``, ``"contains"`` or ``None``."""
    if out == protected:
        return "is"
    if protected in out.parents:
        return "inside"
    if out in protected.parents:
        return "contains"
    p_id, o_id = _identity(protected), _identity(out)
    if p_id is not None and o_id is not None and p_id == o_id:
        return "is"
    if p_id is not None and p_id in _chain(out.parent):
        return "inside"
    if o_id is not None and o_id in _chain(protected.parent):
        return "contains"
    return None


def check_output_path(out: str | Path, inputs: Iterable[str | Path | None], *, what: str = "--out") -> Path:
    """Refuse an output that is, lies inside, or contains an input (or lies in a ``.heartseg`` folder).

    ``out``: the output folder or file as the user gave it; ``inputs``: the scans, patients, dataset roots and
    mask files the command or dialog reads; ``what``: how the user named the output, for the message
    (``"--out"``, ``"the export folder"``). Returns ``out`` resolved. Raises :class:`HeartsegError` (one line,
    naming ``out`` and the input) before anything is written.
    """
    if out is None:
        raise HeartsegError(f"no output given ({what})")
    real_out = _real(out)
    if any(part.lower() == STATE_DIR for part in real_out.parts):
        raise HeartsegError(f"{what} lies inside a {STATE_DIR} folder (heartseg's own journal, lock and versions "
                            "of a patient); choose a folder outside the dataset", out)
    for protected, name in protected_paths(inputs):
        relation = _relation(real_out, protected)
        if relation is None:
            continue
        if relation == "is":
            problem = f"{what} is {name}"
        elif relation == "inside":
            problem = f"{what} lies inside {name}"
        else:
            problem = f"{what} contains {name}"
        raise HeartsegError(f"{problem}; writing there could overwrite the scan, its masks or its saved work - "
                            "choose a folder outside the input (nothing was written)", out)
    return real_out


# ------------------------------------------------------------------------------------------- staged outputs
#: Staging folders inside an output folder: ``.writing-<pid>-<random>`` (hidden; removed on success and failure).
STAGING_PREFIX = ".writing-"
_STAGING = re.compile(r"^\.writing-(\d+)-")
#: A staging folder of a process that is gone is removed by the next command writing there once it is this old.
STALE_STAGING_S = 600
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _is_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a full disk or an exceeded quota."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove staging folders a killed command left in ``out`` (its process gone, untouched for
    :data:`STALE_STAGING_S`); returns what was removed. Never raises."""
    removed = []
    try:
        entries = list(os.scandir(out))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _STAGING.match(entry.name)
        try:
            if not m or entry.is_symlink() or not entry.is_dir() or now - entry.stat().st_mtime < STALE_STAGING_S:
                continue
        except OSError:
            continue
        if int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _publish_plan(stage: Path, out: Path) -> list[tuple[Path, Path]]:
    """``(staged, final)`` renames that move everything under ``stage`` into ``out``: a staged folder whose target
    does not exist moves whole; one whose target is a folder is merged file by file. Refuses, before anything
    moves, a target that is a symbolic link (writing through it could land in an input) or a file where a
    folder goes (or the reverse)."""
    plan = []

    def walk(src_dir: Path, dst_dir: Path) -> None:
        for entry in sorted(os.scandir(src_dir), key=lambda e: e.name):
            src, dst = Path(entry.path), dst_dir / entry.name
            if dst.is_symlink():
                raise HeartsegError("is a symbolic link; heartseg does not write outputs through links "
                                    "(nothing was written)", dst)
            if entry.is_dir(follow_symlinks=False):
                if not dst.exists():
                    plan.append((src, dst))
                elif dst.is_dir():
                    walk(src, dst)
                else:
                    raise HeartsegError("is a file where the output folder goes (nothing was written)", dst)
            elif dst.is_dir():
                raise HeartsegError("is a folder where an output file goes (nothing was written)", dst)
            else:
                plan.append((src, dst))

    walk(stage, out)
    return plan


def _created_dirs(out: Path) -> list[Path]:
    """The folders ``out.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    for p in (out, *out.parents):
        if os.path.lexists(p):
            break
        missing.append(p)
    return missing


@contextlib.contextmanager
def staged_output(out: str | Path, *, what: str = "--out") -> Iterator[Path]:
    """Yield a staging folder inside ``out`` to write a command's outputs to; when the block ends without an
    exception everything in it moves into ``out`` (same relative paths; existing files of those names are
    replaced, other files in ``out`` are left alone).

    On any exception (a full disk, a read-only folder, :class:`~core.errors.Cancelled`, Ctrl+C) the staging folder
    is removed, a folder ``out`` the call created is removed again, and nothing in ``out`` changed. A full disk
    (``ENOSPC`` / ``EDQUOT``, raised by any writer) becomes one :class:`HeartsegError` line naming ``out``; other
    errors keep their message with staged paths shown as their final ones. ``what`` names ``out`` for the user.
    """
    out = Path(out)
    created = _created_dirs(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out))
    except OSError as exc:
        _remove_created(created)
        if exc.errno in _FULL:
            raise _full_error(out, what) from exc
        raise HeartsegError(f"cannot create the output folder: {exc.strerror or exc}", out) from exc
    try:
        yield stage
        for src, dst in _publish_plan(stage, out):
            os.replace(src, dst)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_created(created)
        if _is_full(exc):
            raise _full_error(out, what) from exc
        if isinstance(exc, HeartsegError) and str(stage) in str(exc):
            raise HeartsegError(str(exc).replace(str(stage), str(out))) from exc
        if isinstance(exc, OSError) and not isinstance(exc, HeartsegError):
            where = str(exc.filename).replace(str(stage), str(out)) if exc.filename else str(out)
            raise HeartsegError(f"cannot write the outputs: {exc.strerror or exc} (nothing was written)",
                                where) from exc
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _full_error(out: Path, what: str) -> HeartsegError:
    return HeartsegError(f"the disk is full (no space left on the device) while writing the outputs; nothing was "
                         f"written - free some space or choose another {what}", out)


def _remove_created(created: list[Path]) -> None:
    for p in created:  # deepest first; only empty folders (never anything someone else put there meanwhile)
        with contextlib.suppress(OSError):
            os.rmdir(p)

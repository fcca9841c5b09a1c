"""All-or-nothing replacement of a patient's ``mask/`` folder, and the roll-forward of one that was interrupted
(the "all or nothing" paragraph of :mod:`core.store.writeback`).

``<patient>/.heartseg/commit.json`` is the commit point: the target content (blob sha256) of every changed mask
file and the files to remove, written atomically before any mask file is replaced and removed once all are.
:func:`recover_patient` finishes a replacement whose record is still there, and removes temporaries of killed
writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.atomic import _fsync_dir, file_sha256, now_iso, sha256_bytes, write_many_atomic, write_text_atomic
from core.errors import HeartsegError
from core.io.common import read_bytes
from core.io.kaggle import MASK_DIR
from core.store._blobs import BLOBS_DIR, _blobs_dir
from core.store.layout import lock_path, state_dir, versions_dir
from core.store.locking import is_stale, read_lock

COMMIT_FILE = "commit.json"
ORIGINALS_DIR = "original_masks"
#: Temporaries of killed writes are removed once this old (at once by the holder of the edit lock).
STALE_TEMP_AGE_S = 120.0
_SHA = re.compile(r"^[0-9a-f]{64}$")
_TEMP_FILE = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)*$")
_TEMP_DIR = re.compile(r"^\.(tmp-|trash-).+")


def _commit_path(patient_dir: Path) -> Path:
    return state_dir(patient_dir) / COMMIT_FILE


def _valid_mask_name(name) -> bool:
    return (isinstance(name, str) and name.endswith(".png") and len(name) > 4 and "/" not in name
            and "\\" not in name and not name.startswith(".") and "\0" not in name and len(name) < 256)


def _read_commit(patient_dir: Path) -> dict | None:
    """The pending commit, validated; None when there is none. A damaged one raises :class:`HeartsegError`."""
    path = _commit_path(patient_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HeartsegError(f"cannot read an interrupted save ({exc.__class__.__name__})", path) from exc
    files, remove = (data.get("files"), data.get("remove")) if isinstance(data, dict) else (None, None)
    if (not isinstance(files, dict) or not isinstance(remove, list)
            or not all(_valid_mask_name(k) and isinstance(v, str) and _SHA.match(v) for k, v in files.items())
            or not all(_valid_mask_name(n) for n in remove)):
        raise HeartsegError("an interrupted save record is damaged", path)
    return {"files": files, "remove": remove, "op": str(data.get("op", ""))}


def _apply(patient_dir: Path, files: Mapping[str, str], remove: Sequence[str]) -> None:
    """Make ``mask/`` hold ``files`` (name -> blob sha256) and none of ``remove``; idempotent (files already
    right are not touched)."""
    mask_dir = patient_dir / MASK_DIR
    blobs = _blobs_dir(patient_dir)
    mask_dir.mkdir(exist_ok=True)
    items = []
    for name, digest in files.items():
        target = mask_dir / name
        try:
            if target.is_file() and file_sha256(target) == digest:
                continue
        except OSError:
            pass
        data = read_bytes(blobs / f"{digest}.png")
        if sha256_bytes(data) != digest:
            raise HeartsegError("a stored mask version is damaged (its content does not match its name)",
                                blobs / f"{digest}.png")
        items.append((target, data))
    write_many_atomic(items)
    for name in remove:
        try:
            (mask_dir / name).unlink()
        except FileNotFoundError:
            pass
    _fsync_dir(mask_dir)


def _replace_masks(patient_dir: Path, op: str, files: Mapping[str, str], remove: Sequence[str]) -> None:
    """All-or-nothing: write ``commit.json`` (the commit point), apply it, remove it."""
    commit = _commit_path(patient_dir)
    write_text_atomic(commit, json.dumps({"format": "heartseg-commit", "format_version": 1, "op": op,
                                          "created": now_iso(), "files": dict(files), "remove": list(remove)},
                                         indent=1))
    try:
        _apply(patient_dir, files, remove)
    except BaseException as exc:
        if isinstance(exc, (OSError, HeartsegError)):  # refused while staging (full disk, read-only): untouched
            with contextlib.suppress(OSError):
                commit.unlink()
        raise
    try:
        commit.unlink()
    except FileNotFoundError:
        pass
    _fsync_dir(commit.parent)


def _editing_elsewhere(patient_dir: Path) -> bool:
    """True while another live process holds the patient's edit lock (then nothing here is touched)."""
    try:
        owner = read_lock(lock_path(patient_dir))
    except HeartsegError:
        return True
    if owner is None or owner.pid == os.getpid():
        return False
    return not is_stale(owner)


def recover_patient(patient_dir: str | Path, *, min_age_s: float = STALE_TEMP_AGE_S) -> list[str]:
    """Finish a save or restore that was interrupted after its commit point, and remove temporaries of killed
    writes older than ``min_age_s`` (:mod:`core.store.writeback`'s docstring). Does nothing while another live
    process holds the patient's edit lock. Returns one line per thing done (for a message); best effort for the
    temporaries.

    Raises :class:`HeartsegError` naming the record when an interrupted save cannot be completed."""
    patient_dir = Path(patient_dir)
    heartseg = state_dir(patient_dir)
    if not heartseg.is_dir() or _editing_elsewhere(patient_dir):
        return []
    done = []
    pending = _read_commit(patient_dir)
    if pending is not None:
        try:
            _apply(patient_dir, pending["files"], pending["remove"])
            _commit_path(patient_dir).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HeartsegError(f"cannot finish an interrupted save: {exc.strerror or exc}",
                                _commit_path(patient_dir)) from exc
        done.append(f"finished an interrupted {pending['op'] or 'save'} of {len(pending['files'])} mask file(s)")
    now = time.time()
    removed = 0
    for folder in (patient_dir / MASK_DIR, heartseg, heartseg / BLOBS_DIR, versions_dir(patient_dir),
                   heartseg / ORIGINALS_DIR):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if now - info.st_mtime < min_age_s:
                    continue
                if stat.S_ISREG(info.st_mode) and _TEMP_FILE.match(entry.name):
                    os.unlink(entry.path)
                    removed += 1
                elif stat.S_ISDIR(info.st_mode) and _TEMP_DIR.match(entry.name) and folder == versions_dir(
                        patient_dir):
                    shutil.rmtree(entry.path)
                    removed += 1
            except OSError:
                continue
    if removed:
        done.append(f"removed {removed} temporary file(s) left by an interrupted write")
    return done

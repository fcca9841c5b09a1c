"""The content store of :mod:`core.store.writeback`: every mask content a version holds, once, as
``<patient>/.heartseg/blobs/<sha256>.png``; hard links (or fsynced copies) of those files; the dataset's
permissions for whatever heartseg creates (never ``mkdtemp``'s ``0700``)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from core.atomic import file_sha256, write_bytes_atomic
from core.io.kaggle import MASK_DIR
from core.store.layout import BLOBS_DIR, state_dir


def _blobs_dir(patient_dir: Path) -> Path:
    return state_dir(patient_dir) / BLOBS_DIR


def _dir_mode(patient_dir: Path) -> int:
    """The permissions of the dataset's ``mask/`` folder (else the patient folder's): new heartseg folders get
    them, never ``mkdtemp``'s ``0700``."""
    for folder in (patient_dir / MASK_DIR, patient_dir):
        try:
            return stat.S_IMODE(os.stat(folder).st_mode)
        except OSError:
            continue
    return 0o755


def _mkdir_like(folder: Path, mode: int) -> None:
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, mode)


def _png_entries(folder: Path) -> list[os.DirEntry]:
    """The visible ``.png`` regular files of ``folder`` (unsorted; cheap: one ``scandir``)."""
    try:
        with os.scandir(folder) as it:
            return [e for e in it if e.name.lower().endswith(".png") and not e.name.startswith(".")
                    and e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def _put_blob(patient_dir: Path, data: bytes, digest: str, mode: int | None = None) -> Path:
    """Store ``data`` (SHA-256 ``digest``) once as ``.heartseg/blobs/<digest>.png`` (atomic; an existing intact
    blob is reused, a damaged one replaced)."""
    blobs = _blobs_dir(patient_dir)
    _mkdir_like(blobs, _dir_mode(patient_dir))
    blob = blobs / f"{digest}.png"
    try:
        if blob.is_file() and file_sha256(blob) == digest:
            return blob
    except OSError:
        pass
    write_bytes_atomic(blob, data)
    if mode is not None:
        try:
            os.chmod(blob, mode & 0o666)
        except OSError:
            pass
    return blob


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # no hard links here (FAT, some shares, EMLINK): a plain copy, fsynced
        _copy_synced(src, dst)


def _copy_synced(src: Path, dst: Path) -> None:
    """Copy bytes and fsync the copy (its folder is renamed into place afterwards)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)

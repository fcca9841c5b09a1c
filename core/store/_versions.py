"""Earlier states of a patient's ``mask/`` folder, stored by content, and their retention (the "versions" and
"retention" paragraphs of :mod:`core.store.writeback`).

``<patient>/.heartseg/versions/<timestamp>/`` lists every mask PNG of one state; each file is a hard link to its
blob (:mod:`core.store._blobs`). A version folder is built hidden and renamed into place, so a listing never sees
half of one.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.atomic import _fsync_dir, sha256_bytes
from core.errors import HeartsegError
from core.io.common import list_dirs, list_files, read_bytes
from core.io.kaggle import MASK_DIR
from core.store._blobs import _blobs_dir, _dir_mode, _link_or_copy, _mkdir_like, _png_entries, _put_blob
from core.store._commit import _read_commit
from core.store.layout import versions_dir

#: Retention: the newest KEEP_LAST versions are kept, plus the newest of each UTC day of the last
#: KEEP_DAILY_DAYS days (:mod:`core.store.writeback`'s docstring).
KEEP_LAST = 20
KEEP_DAILY_DAYS = 90
_VERSION_NAME = re.compile(r"^(\d{8})T\d{6}_\d{6}Z(-\d+)?$")


@dataclass(frozen=True)
class MaskVersion:
    """One recoverable earlier state of a patient's ``mask/`` folder."""

    version_id: str  # folder name: UTC timestamp ``YYYYmmddTHHMMSS_ffffffZ``
    path: Path
    n_masks: int


def _new_version_name(base: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    for k in range(1000):
        name = stamp if k == 0 else f"{stamp}-{k}"
        if not (base / name).exists():
            return name
    raise HeartsegError("cannot create a version folder", base)


def _content(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the mask PNGs directly in ``folder`` (hidden files skipped)."""
    if not folder.is_dir():
        return {}
    return {e.name: sha256_bytes(read_bytes(Path(e.path))) for e in _png_entries(folder)}


def _latest_version(patient_dir: Path) -> MaskVersion | None:
    base = versions_dir(patient_dir)
    dirs = sorted(list_dirs(base), key=lambda d: d.name) if base.is_dir() else []
    return MaskVersion(dirs[-1].name, dirs[-1], len(_png_entries(dirs[-1]))) if dirs else None


def snapshot_masks(patient_dir: Path) -> MaskVersion | None:
    """Keep the current ``mask/`` PNGs as a new version; ``None`` when there is no mask yet. When the newest
    version already holds exactly this content, that version is returned and nothing is added.

    Each file's content goes to ``blobs/`` once; the version folder (hard links to the blobs) is built in a
    hidden temporary folder (every file fsynced) and renamed into place, so a crash never leaves a half-built
    version behind (only, at worst, a hidden ``.tmp-*`` folder, which listings skip and
    :func:`core.store.writeback.recover_patient` removes)."""
    patient_dir = Path(patient_dir)
    mask_dir = patient_dir / MASK_DIR
    files = list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []
    if not files:
        return None
    base = versions_dir(patient_dir)
    tmp = None
    try:
        contents = {f.name: read_bytes(f) for f in files}
        digests = {name: sha256_bytes(data) for name, data in contents.items()}
        latest = _latest_version(patient_dir)
        if latest is not None and _content(latest.path) == digests:
            return latest
        mode = _dir_mode(patient_dir)
        _mkdir_like(base, mode)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        os.chmod(tmp, mode)
        for f in files:
            blob = _put_blob(patient_dir, contents[f.name], digests[f.name], stat.S_IMODE(f.stat().st_mode))
            _link_or_copy(blob, tmp / f.name)
        _fsync_dir(tmp)
        for k in range(1000):
            dest = base / _new_version_name(base)
            try:
                os.rename(tmp, dest)  # fails when dest appeared meanwhile (a non-empty folder or a file)
                break
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or k == 999:
                    raise
        _fsync_dir(base)
    except (OSError, HeartsegError) as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, HeartsegError):
            raise
        raise HeartsegError(f"cannot keep the previous masks: {exc.strerror or exc}", base) from exc
    return MaskVersion(dest.name, dest, len(files))


def list_versions(patient_dir: str | Path) -> list[MaskVersion]:
    """Earlier saved states of the patient's masks, oldest first."""
    base = versions_dir(patient_dir)
    if not base.is_dir():
        return []
    return [MaskVersion(d.name, d, len(_png_entries(d))) for d in sorted(list_dirs(base), key=lambda d: d.name)]


def versions_to_keep(version_ids: Sequence[str], *, now: datetime | None = None, keep_last: int = KEEP_LAST,
                     keep_daily_days: int = KEEP_DAILY_DAYS) -> set[str]:
    """The retention rule (:mod:`core.store.writeback`'s docstring): of ``version_ids`` (time-stamp names), the
    newest ``keep_last``, plus the newest of each UTC day within ``keep_daily_days`` days of ``now``. Names that
    are not heartseg time stamps are always kept."""
    now = now or datetime.now(timezone.utc)
    stamped = sorted(v for v in version_ids if _VERSION_NAME.match(v))
    keep = {v for v in version_ids if not _VERSION_NAME.match(v)}
    keep.update(stamped[-keep_last:] if keep_last > 0 else [])
    newest_of_day: dict[str, str] = {}
    for v in stamped:
        newest_of_day[v[:8]] = v  # sorted: the last one of each day wins
    for day, v in newest_of_day.items():
        try:
            age = now - datetime.strptime(day, "%Y%m%d").replace(tzinfo=timezone.utc)
        except ValueError:
            keep.add(v)
            continue
        if age.days < keep_daily_days:
            keep.add(v)
    return keep


def prune_versions(patient_dir: str | Path, *, now: datetime | None = None) -> list[str]:
    """Apply the retention rule; remove blobs no version uses. Returns the removed version ids. Each removed
    folder is first renamed to a hidden ``.trash-*`` name (so a listing never sees half a version)."""
    patient_dir = Path(patient_dir)
    base = versions_dir(patient_dir)
    versions = list_versions(patient_dir)
    keep = versions_to_keep([v.version_id for v in versions], now=now)
    removed = []
    for v in versions:
        if v.version_id in keep:
            continue
        trash = base / f".trash-{v.version_id}"
        try:
            os.rename(v.path, trash)
        except OSError:
            continue
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(v.version_id)
    _collect_blobs(patient_dir)
    return removed


def _prune_quietly(patient_dir: Path) -> None:
    """Retention after a save or restore: never fails the save itself (a version left over is harmless)."""
    try:
        prune_versions(patient_dir)
    except (OSError, HeartsegError):
        pass


def _collect_blobs(patient_dir: Path) -> None:
    """Remove blobs that no version folder links to (and that no pending commit needs)."""
    blobs = _blobs_dir(patient_dir)
    if not blobs.is_dir():
        return
    used: set[tuple[int, int]] = set()
    used_names: set[str] = set()
    for v in list_versions(patient_dir):
        for entry in _png_entries(v.path):
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            used.add((st.st_dev, st.st_ino))
    pending = _read_commit(patient_dir)
    if pending is not None:
        used_names.update(f"{d}.png" for d in pending["files"].values())
    for blob in _png_entries(blobs):
        try:
            st = blob.stat(follow_symlinks=False)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in used and blob.name not in used_names:
            try:
                os.unlink(blob.path)
            except OSError:
                pass

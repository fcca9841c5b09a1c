"""Writing corrected masks back into a Kaggle-layout patient folder, keeping every earlier version.

Layout inside a patient folder (``<patient>/image``, ``<patient>/mask`` are the dataset's own)::

    <patient>/.heartseg/review.json                 per-slice review state (sidecar, written atomically)
    <patient>/.heartseg/original_masks/<name>.png   the dataset's own mask, copied the first time it is replaced
    <patient>/.heartseg/versions/<timestamp>/       the whole mask/ folder as it was before each save / restore

    <patient>/.heartseg/blobs/<sha256>.png          every mask content a version holds, stored once
    <patient>/.heartseg/commit.json                 a save / restore in progress (rolled forward if interrupted)

``image/`` is never written. Mask PNGs are 0/255 8-bit greyscale. A save writes only the slices whose content
changed (the others keep their bytes and mtime).

**Versions are stored by content.** Each version folder lists every mask PNG of that state, but each file is a
hard link to ``blobs/<sha256>.png`` (a copy where the file system has no hard links), so an unchanged slice
costs no space however many versions hold it, and a save that changes nothing adds no version. Version folders
and blobs get the dataset's permissions (the mode of ``mask/`` and of its files), never ``0700``.

**Retention** (:data:`KEEP_LAST`, :data:`KEEP_DAILY_DAYS`): after each save or restore the newest ``KEEP_LAST``
(20) versions are kept, plus the newest version of each UTC day of the last ``KEEP_DAILY_DAYS`` (90) days; older
ones are removed, and so are blobs no version uses. Folders under ``versions/`` whose name is not a heartseg time
stamp are never touched; the dataset's own masks stay in ``original_masks/`` for good.

**All or nothing.** A save or restore first stores the new content as blobs and writes ``commit.json`` (the
target content of every changed mask file, atomically: the commit point), then replaces the mask files and
removes ``commit.json``. A process killed before the commit point leaves the patient all-old; after it,
:func:`recover_patient` -- run when the patient is next opened (indexed by :func:`core.store.dataset.open_dataset`,
loaded, opened for editing, saved or restored) -- finishes the job, so the patient is all-new. It also removes
temporaries left by killed writes (hidden ``.*.tmp*`` files in ``mask/`` and ``.heartseg/``, ``.tmp-*``
folders in ``versions/``) once they are :data:`STALE_TEMP_AGE_S` old, or at once for the process that holds the
patient's edit lock. Neither happens while another live process holds that lock.

Sidecar format (``review.json``)::

    {"format": "heartseg-review", "format_version": 1, "patient": "<pid>", "updated_at": "<ISO UTC>",
     "slices": {"1-001": {"state": "accepted", "saved_at": "<ISO UTC>", "dice_ai": 0.93, "ai_area_px": 5120,
                          "area_px": 4987, "seconds": 12.5}, ...}}

``dice_ai`` is the Dice overlap between the AI mask and the saved mask of that slice (1.0 when both are empty),
recorded only when ``ai_masks`` were given to :func:`save_masks`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from core.atomic import _fsync_dir, now_iso, write_bytes_atomic, write_many_atomic, write_text_atomic
from core.errors import HeartsegError
from core.io.common import list_dirs, list_files, read_bytes
from core.io.kaggle import IMAGE_DIR, MASK_DIR
from core.io.masks import encode_mask_png, write_mask_png  # noqa: F401  (write_mask_png re-exported)
from core.io.png import read_png_header
from core.metrics import dice  # noqa: F401  (re-exported: the sidecar's dice_ai)
from core.store.layout import lock_path, review_path, state_dir, versions_dir
from core.store.locking import is_stale, read_lock
from core.types import REVIEW_STATES  # noqa: F401  (re-exported)

ORIGINALS_DIR = "original_masks"
BLOBS_DIR = "blobs"
COMMIT_FILE = "commit.json"
#: Retention: the newest KEEP_LAST versions are kept, plus the newest of each UTC day of the last
#: KEEP_DAILY_DAYS days (module docstring).
KEEP_LAST = 20
KEEP_DAILY_DAYS = 90
#: Temporaries of killed writes are removed once this old (at once by the holder of the edit lock).
STALE_TEMP_AGE_S = 120.0
_VERSION_NAME = re.compile(r"^(\d{8})T\d{6}_\d{6}Z(-\d+)?$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_TEMP_FILE = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)*$")
_TEMP_DIR = re.compile(r"^\.(tmp-|trash-).+")
#: The review states a slice can have.


@dataclass(frozen=True)
class MaskVersion:
    """One recoverable earlier state of a patient's ``mask/`` folder."""

    version_id: str  # folder name: UTC timestamp ``YYYYmmddTHHMMSS_ffffffZ``
    path: Path
    n_masks: int



def read_review(patient_dir: str | Path) -> dict:
    """The sidecar as a dict (an empty one when the patient was never reviewed); a damaged sidecar raises
    :class:`HeartsegError` naming it rather than silently dropping review work."""
    path = review_path(patient_dir)
    if not path.exists():
        return {"format": "heartseg-review", "format_version": 1, "patient": Path(patient_dir).name,
                "slices": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HeartsegError(f"cannot read the review sidecar ({exc})", path) from exc
    if not isinstance(data, dict) or not isinstance(data.get("slices"), dict):
        raise HeartsegError("the review sidecar is not in the heartseg-review format", path)
    return data


def review_states(patient_dir: str | Path, slice_names: Optional[Sequence[str]] = None) -> dict[str, str]:
    """Slice name -> review state. With ``slice_names``, every name is present (``"not_reviewed"`` by default)."""
    slices = read_review(patient_dir)["slices"]
    states = {name: str(rec.get("state", "not_reviewed")) for name, rec in slices.items()}
    if slice_names is None:
        return states
    return {name: states.get(name, "not_reviewed") for name in slice_names}


def review_summary(patient_dir: str | Path, n_slices: int) -> dict[str, int]:
    """Counts per state over ``n_slices`` slices (slices absent from the sidecar count as not reviewed)."""
    states = review_states(patient_dir)
    counts = {s: 0 for s in REVIEW_STATES}
    for state in states.values():
        counts[state if state in counts else "not_reviewed"] += 1
    counts["not_reviewed"] += max(0, n_slices - len(states))
    return counts


def _new_version_name(base: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    for k in range(1000):
        name = stamp if k == 0 else f"{stamp}-{k}"
        if not (base / name).exists():
            return name
    raise HeartsegError("cannot create a version folder", base)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _content(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the mask PNGs directly in ``folder`` (hidden files skipped)."""
    if not folder.is_dir():
        return {}
    return {e.name: _sha(read_bytes(Path(e.path))) for e in _png_entries(folder)}


def _put_blob(patient_dir: Path, data: bytes, digest: str, mode: Optional[int] = None) -> Path:
    """Store ``data`` (SHA-256 ``digest``) once as ``.heartseg/blobs/<digest>.png`` (atomic; an existing intact
    blob is reused, a damaged one replaced)."""
    blobs = state_dir(patient_dir) / BLOBS_DIR
    _mkdir_like(blobs, _dir_mode(patient_dir))
    blob = blobs / f"{digest}.png"
    try:
        if blob.is_file() and _sha(blob.read_bytes()) == digest:
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


def _latest_version(patient_dir: Path) -> Optional[MaskVersion]:
    base = versions_dir(patient_dir)
    dirs = sorted(list_dirs(base), key=lambda d: d.name) if base.is_dir() else []
    return MaskVersion(dirs[-1].name, dirs[-1], len(_png_entries(dirs[-1]))) if dirs else None


def snapshot_masks(patient_dir: Path) -> Optional[MaskVersion]:
    """Keep the current ``mask/`` PNGs as a new version; ``None`` when there is no mask yet. When the newest
    version already holds exactly this content, that version is returned and nothing is added.

    Each file's content goes to ``blobs/`` once; the version folder (hard links to the blobs) is built in a
    hidden temporary folder (every file fsynced) and renamed into place, so a crash never leaves a half-built
    version behind (only, at worst, a hidden ``.tmp-*`` folder, which listings skip and :func:`recover_patient`
    removes)."""
    patient_dir = Path(patient_dir)
    mask_dir = patient_dir / MASK_DIR
    files = list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []
    if not files:
        return None
    base = versions_dir(patient_dir)
    tmp = None
    try:
        contents = {f.name: read_bytes(f) for f in files}
        digests = {name: _sha(data) for name, data in contents.items()}
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


def _copy_synced(src: Path, dst: Path) -> None:
    """Copy bytes and fsync the copy (its folder is renamed into place afterwards)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)


def list_versions(patient_dir: str | Path) -> list[MaskVersion]:
    """Earlier saved states of the patient's masks, oldest first."""
    base = versions_dir(patient_dir)
    if not base.is_dir():
        return []
    return [MaskVersion(d.name, d, len(_png_entries(d))) for d in sorted(list_dirs(base), key=lambda d: d.name)]


def _png_entries(folder: Path) -> list[os.DirEntry]:
    """The visible ``.png`` regular files of ``folder`` (unsorted; cheap: one ``scandir``)."""
    try:
        with os.scandir(folder) as it:
            return [e for e in it if e.name.lower().endswith(".png") and not e.name.startswith(".")
                    and e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def versions_to_keep(version_ids: Sequence[str], *, now: Optional[datetime] = None, keep_last: int = KEEP_LAST,
                     keep_daily_days: int = KEEP_DAILY_DAYS) -> set[str]:
    """The retention rule (module docstring): of ``version_ids`` (time-stamp names), the newest ``keep_last``,
    plus the newest of each UTC day within ``keep_daily_days`` days of ``now``. Names that are not heartseg time
    stamps are always kept."""
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


def prune_versions(patient_dir: str | Path, *, now: Optional[datetime] = None) -> list[str]:
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


def _collect_blobs(patient_dir: Path) -> None:
    """Remove blobs that no version folder links to (and that no pending commit needs)."""
    blobs = state_dir(patient_dir) / BLOBS_DIR
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


# --- all-or-nothing replacement of mask/ ------------------------------------------------------------------------
def _commit_path(patient_dir: Path) -> Path:
    return state_dir(patient_dir) / COMMIT_FILE


def _valid_mask_name(name) -> bool:
    return (isinstance(name, str) and name.endswith(".png") and len(name) > 4 and "/" not in name
            and "\\" not in name and not name.startswith(".") and "\0" not in name and len(name) < 256)


def _read_commit(patient_dir: Path) -> Optional[dict]:
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
    blobs = state_dir(patient_dir) / BLOBS_DIR
    mask_dir.mkdir(exist_ok=True)
    items = []
    for name, digest in files.items():
        target = mask_dir / name
        try:
            if target.is_file() and _sha(target.read_bytes()) == digest:
                continue
        except OSError:
            pass
        data = read_bytes(blobs / f"{digest}.png")
        if _sha(data) != digest:
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
    writes older than ``min_age_s`` (module docstring). Does nothing while another live process holds the
    patient's edit lock. Returns one line per thing done (for a message); best effort for the temporaries.

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


def _check_names(patient_dir: Path, masks: np.ndarray, slice_names: Sequence[str]) -> list[str]:
    if masks.ndim != 3 or len(slice_names) != masks.shape[0]:
        raise ValueError(f"masks {masks.shape} need one slice name each, got {len(slice_names)} names")
    names = [n[:-4] if n.lower().endswith(".png") else n for n in slice_names]
    for name in names:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise HeartsegError(f"invalid slice name {name!r}", patient_dir)
        image = patient_dir / IMAGE_DIR / f"{name}.png"
        h = read_png_header(image)  # the image must exist: masks are never written without their slice
        if (h.height, h.width) != masks.shape[1:]:
            raise HeartsegError(f"mask is {masks.shape[2]} x {masks.shape[1]} but the image is "
                                f"{h.width} x {h.height}", image)
    return names


def save_masks(patient_dir: str | Path, masks: np.ndarray, slice_names: Sequence[str],
               review: Optional[Mapping] = None, ai_masks: Optional[np.ndarray] = None,
               seconds: Optional[Sequence[float]] = None) -> Optional[MaskVersion]:
    """Write ``masks`` ``(n, rows, cols)`` 0/1 as ``<patient>/mask/<slice_names[i]>.png`` (0/255), all or nothing
    (module docstring). Only slices whose content changed are written; the others keep their bytes and mtime.

    Before anything is replaced: the dataset's own mask of each slice is copied once to ``original_masks/``, and
    the whole current ``mask/`` folder is kept as a version (returned; ``None`` when there was no mask yet or
    nothing changes; an existing version when the newest one already holds exactly the current masks).
    ``review``: slice name (or index into ``slice_names``) -> state (one of :data:`REVIEW_STATES`); slices not
    named keep their recorded state. ``ai_masks``: ``(n, rows, cols)`` 0/1 AI masks; their Dice with the saved
    masks goes into the sidecar. Every saved slice gets ``saved_at``.
    """
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise HeartsegError("cannot save: the patient folder does not exist any more (moved, renamed or on a "
                            "disconnected drive?); save elsewhere with Export", patient_dir)
    masks = np.asarray(masks)
    if masks.size and (masks.min() < 0 or masks.max() > 1):
        raise ValueError("masks must hold 0/1 values")
    names = _check_names(patient_dir, masks, slice_names)
    recover_patient(patient_dir)  # an interrupted earlier save is finished first
    if ai_masks is not None and np.shape(ai_masks) != masks.shape:
        raise ValueError(f"ai_masks shape {np.shape(ai_masks)} differs from masks {masks.shape}")
    states = {}
    for key, state in (review or {}).items():
        if state not in REVIEW_STATES:
            raise ValueError(f"unknown review state {state!r}; expected one of {REVIEW_STATES}")
        states[names[key] if isinstance(key, (int, np.integer)) else str(key)] = state
    sidecar = read_review(patient_dir)
    slices = sidecar["slices"]
    mask_dir = patient_dir / MASK_DIR
    heartseg = state_dir(patient_dir)
    originals = heartseg / ORIGINALS_DIR
    try:
        mask_dir.mkdir(exist_ok=True)
        originals.mkdir(parents=True, exist_ok=True)
        for name in names:  # the dataset's own masks: kept once, before heartseg first replaces them
            current, kept = mask_dir / f"{name}.png", originals / f"{name}.png"
            if current.exists() and not kept.exists() and "saved_at" not in slices.get(name, {}):
                write_bytes_atomic(kept, read_bytes(current))  # atomic: a kill never leaves a torn original
    except OSError as exc:
        raise HeartsegError(f"cannot keep the original masks: {exc.strerror or exc}", patient_dir) from exc
    encoded = {f"{name}.png": encode_mask_png(masks[i]) for i, name in enumerate(names)}
    changed = {}
    for fname, data in encoded.items():
        try:
            same = (mask_dir / fname).is_file() and read_bytes(mask_dir / fname) == data
        except HeartsegError:
            same = False
        if not same:
            changed[fname] = data
    version = None
    if changed:
        version = snapshot_masks(patient_dir)
        # the new content is stored (fsynced) first, then committed, then renamed into place: a full disk or a
        # read-only folder leaves every mask as it was; a kill leaves the patient all-old or (after
        # recover_patient) all-new
        try:
            mode = _mask_file_mode(mask_dir)
            digests = {fname: _sha(data) for fname, data in changed.items()}
            for fname, data in changed.items():
                _put_blob(patient_dir, data, digests[fname], mode)
            _replace_masks(patient_dir, "save", digests, [])
        except OSError as exc:
            raise HeartsegError(f"cannot save: {exc.strerror or exc}", mask_dir) from exc
    stamp = now_iso()
    for i, name in enumerate(names):
        rec = dict(slices.get(name, {}))
        rec["state"] = states.get(name, rec.get("state", "not_reviewed"))
        rec["saved_at"] = stamp
        rec["area_px"] = int(np.count_nonzero(masks[i]))
        if ai_masks is not None:
            rec["dice_ai"] = round(dice(ai_masks[i], masks[i]), 6)
            rec["ai_area_px"] = int(np.count_nonzero(ai_masks[i]))
        if seconds is not None:
            rec["seconds"] = round(float(rec.get("seconds", 0.0)) + float(seconds[i]), 2)
        slices[name] = rec
    for name, state in states.items():  # states for slices not in this save (e.g. flagged without a new mask)
        if name not in names:
            slices.setdefault(name, {})["state"] = state
    write_review(patient_dir, sidecar)
    if changed:
        _prune_quietly(patient_dir)
    return version


def _mask_file_mode(mask_dir: Path) -> Optional[int]:
    """The mode of the dataset's mask files (the first one), for blobs and versions."""
    for f in list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []:
        try:
            return stat.S_IMODE(f.stat().st_mode)
        except OSError:
            continue
    return None


def _prune_quietly(patient_dir: Path) -> None:
    """Retention after a save or restore: never fails the save itself (a version left over is harmless)."""
    try:
        prune_versions(patient_dir)
    except (OSError, HeartsegError):
        pass


def write_review(patient_dir: Path, sidecar: dict) -> None:
    """Write the sidecar atomically (``updated_at`` refreshed)."""
    sidecar = dict(sidecar, format="heartseg-review", format_version=1, updated_at=now_iso())
    try:
        state_dir(patient_dir).mkdir(exist_ok=True)
    except OSError as exc:
        raise HeartsegError(f"cannot save the review states: {exc.strerror or exc}", patient_dir) from exc
    write_text_atomic(review_path(patient_dir), json.dumps(sidecar, indent=1, sort_keys=True))


def set_review_states(patient_dir: str | Path, states: Mapping[str, str]) -> None:
    """Record review states (slice name -> state) without writing masks (e.g. flag a slice)."""
    patient_dir = Path(patient_dir)
    sidecar = read_review(patient_dir)
    for name, state in states.items():
        if state not in REVIEW_STATES:
            raise ValueError(f"unknown review state {state!r}; expected one of {REVIEW_STATES}")
        sidecar["slices"].setdefault(str(name), {})["state"] = state
    write_review(patient_dir, sidecar)


def restore_version(patient_dir: str | Path, version_id: str) -> Optional[MaskVersion]:
    """Make ``mask/`` exactly what it was in version ``version_id`` (see :func:`list_versions`), all or nothing:
    a kill at any moment leaves the patient all-old or (after :func:`recover_patient`) all-new.

    The current state is kept as a version first, so a restore can itself be undone. Mask files that did not
    exist in that version are removed. Returns the version holding the state before the restore.
    """
    patient_dir = Path(patient_dir)
    source = versions_dir(patient_dir) / str(version_id)
    if (not version_id or not isinstance(version_id, str) or "/" in version_id or "\\" in version_id
            or version_id.startswith(".") or not source.is_dir()):
        raise HeartsegError(f"no saved mask version {version_id!r}", versions_dir(patient_dir))
    recover_patient(patient_dir)
    mask_dir = patient_dir / MASK_DIR
    try:
        wanted = {}
        for f in list_files(source, (".png",)):
            data = read_bytes(f)
            wanted[f.name] = _sha(data)
            _put_blob(patient_dir, data, wanted[f.name], stat.S_IMODE(f.stat().st_mode))
        kept = snapshot_masks(patient_dir)
        current = [f.name for f in list_files(mask_dir, (".png",))] if mask_dir.is_dir() else []
        _replace_masks(patient_dir, "restore", wanted, [n for n in current if n not in wanted])
    except OSError as exc:
        raise HeartsegError(f"cannot restore the masks: {exc.strerror or exc}", mask_dir) from exc
    _prune_quietly(patient_dir)
    return kept

"""Writing corrected masks back into a Kaggle-layout patient folder, keeping every earlier version.

Layout inside a patient folder (``<patient>/image``, ``<patient>/mask`` are the dataset's own)::

    <patient>/.heartseg/review.json                 per-slice review state (sidecar, written atomically)
    <patient>/.heartseg/original_masks/<name>.png   the dataset's own mask, copied the first time it is replaced
    <patient>/.heartseg/versions/<timestamp>/       the whole mask/ folder as it was before each save / restore

``image/`` is never written. Mask PNGs are 0/255 8-bit greyscale, each replaced atomically. Version snapshots are
plain copies (mask PNGs are a few KiB each; copies stay intact even if another tool edits ``mask/`` in place).

Sidecar format (``review.json``)::

    {"format": "heartseg-review", "format_version": 1, "patient": "<pid>", "updated_at": "<ISO UTC>",
     "slices": {"1-001": {"state": "accepted", "saved_at": "<ISO UTC>", "dice_ai": 0.93, "ai_area_px": 5120,
                          "area_px": 4987, "seconds": 12.5}, ...}}

``dice_ai`` is the Dice overlap between the AI mask and the saved mask of that slice (1.0 when both are empty),
recorded only when ``ai_masks`` were given to :func:`save_masks`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
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
from core.store.layout import review_path, state_dir, versions_dir
from core.types import REVIEW_STATES  # noqa: F401  (re-exported)

ORIGINALS_DIR = "original_masks"
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


def snapshot_masks(patient_dir: Path) -> Optional[MaskVersion]:
    """Keep the current ``mask/`` PNGs as a new version; ``None`` when there is no mask yet.

    The copy is built in a hidden temporary folder (every file fsynced) and renamed into place, so a crash never
    leaves a half-copied version behind (only, at worst, a hidden ``.tmp-*`` folder, which listings skip)."""
    mask_dir = patient_dir / MASK_DIR
    files = list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []
    if not files:
        return None
    base = versions_dir(patient_dir)
    tmp = None
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        for f in files:
            _copy_synced(f, tmp / f.name)
        for k in range(1000):
            dest = base / _new_version_name(base)
            try:
                os.rename(tmp, dest)  # fails when dest appeared meanwhile (a non-empty folder or a file)
                break
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or k == 999:
                    raise
        _fsync_dir(base)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
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
    return [MaskVersion(d.name, d, len(list_files(d, (".png",)))) for d in sorted(list_dirs(base),
                                                                                 key=lambda d: d.name)]


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
    """Write ``masks`` ``(n, rows, cols)`` 0/1 as ``<patient>/mask/<slice_names[i]>.png`` (0/255, atomic).

    Before anything is replaced: the dataset's own mask of each slice is copied once to ``original_masks/``, and
    the whole current ``mask/`` folder is kept as a new version (returned; ``None`` when there was no mask yet).
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
    version = snapshot_masks(patient_dir)
    stamp = now_iso()
    # all new mask files are written and fsynced first, then renamed into place: a full disk or a read-only
    # folder leaves every mask as it was; a crash leaves each mask complete (old or new)
    write_many_atomic([(mask_dir / f"{name}.png", encode_mask_png(masks[i])) for i, name in enumerate(names)])
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
    return version


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
    """Make ``mask/`` exactly what it was in version ``version_id`` (see :func:`list_versions`).

    The current state is kept as a new version first, so a restore can itself be undone. Mask files that did not
    exist in that version are removed. Returns the version holding the state before the restore.
    """
    patient_dir = Path(patient_dir)
    source = versions_dir(patient_dir) / version_id
    if not version_id or "/" in version_id or "\\" in version_id or not source.is_dir():
        raise HeartsegError(f"no saved mask version {version_id!r}", versions_dir(patient_dir))
    kept = snapshot_masks(patient_dir)
    mask_dir = patient_dir / MASK_DIR
    wanted = {f.name: f for f in list_files(source, (".png",))}
    try:
        mask_dir.mkdir(exist_ok=True)
        for name, f in wanted.items():
            write_bytes_atomic(mask_dir / name, read_bytes(f))  # byte-exact
        for f in list_files(mask_dir, (".png",)):
            if f.name not in wanted:
                f.unlink()
    except OSError as exc:
        raise HeartsegError(f"cannot restore the masks: {exc.strerror or exc}", mask_dir) from exc
    return kept

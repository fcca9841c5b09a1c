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

This module holds the entry points (save, restore, the review sidecar) and re-exports the parts they are built
from: the content store (``core.store._blobs``), version folders and retention (``core.store._versions``) and the
all-or-nothing replacement with its roll-forward (``core.store._commit``).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from core.atomic import now_iso, sha256_bytes, write_bytes_atomic, write_text_atomic
from core.errors import HeartsegError
from core.io.common import list_files, read_bytes
from core.io.kaggle import IMAGE_DIR, MASK_DIR
from core.io.masks import encode_mask_png, write_mask_png
from core.io.png import read_png_header
from core.metrics import dice
from core.store._blobs import BLOBS_DIR, _put_blob
from core.store._commit import COMMIT_FILE, ORIGINALS_DIR, STALE_TEMP_AGE_S, _replace_masks, recover_patient
from core.store._versions import (
    KEEP_DAILY_DAYS,
    KEEP_LAST,
    MaskVersion,
    _prune_quietly,
    list_versions,
    prune_versions,
    snapshot_masks,
    versions_to_keep,
)
from core.store.layout import review_path, state_dir, versions_dir
from core.types import REVIEW_STATES


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


def review_states(patient_dir: str | Path, slice_names: Sequence[str] | None = None) -> dict[str, str]:
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
               review: Mapping | None = None, ai_masks: np.ndarray | None = None,
               seconds: Sequence[float] | None = None) -> MaskVersion | None:
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
            digests = {fname: sha256_bytes(data) for fname, data in changed.items()}
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


def _mask_file_mode(mask_dir: Path) -> int | None:
    """The mode of the dataset's mask files (the first one), for blobs and versions."""
    for f in list_files(mask_dir, (".png",)) if mask_dir.is_dir() else []:
        try:
            return stat.S_IMODE(f.stat().st_mode)
        except OSError:
            continue
    return None


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


def restore_version(patient_dir: str | Path, version_id: str) -> MaskVersion | None:
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
            wanted[f.name] = sha256_bytes(data)
            _put_blob(patient_dir, data, wanted[f.name], stat.S_IMODE(f.stat().st_mode))
        kept = snapshot_masks(patient_dir)
        current = [f.name for f in list_files(mask_dir, (".png",))] if mask_dir.is_dir() else []
        _replace_masks(patient_dir, "restore", wanted, [n for n in current if n not in wanted])
    except OSError as exc:
        raise HeartsegError(f"cannot restore the masks: {exc.strerror or exc}", mask_dir) from exc
    _prune_quietly(patient_dir)
    return kept


#: The public names (several are re-exported from the private modules this one is built from).
__all__ = ["BLOBS_DIR", "COMMIT_FILE", "KEEP_DAILY_DAYS", "KEEP_LAST", "ORIGINALS_DIR", "REVIEW_STATES",
           "STALE_TEMP_AGE_S", "MaskVersion", "dice", "list_versions", "prune_versions", "read_review",
           "recover_patient", "restore_version", "review_states", "review_summary", "save_masks",
           "set_review_states", "snapshot_masks", "versions_to_keep", "write_mask_png", "write_review"]

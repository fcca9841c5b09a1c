"""The dataset index (Kaggle layout), the patient-level split, training pairs and write-back.

Accepted roots for :func:`open_dataset`:

* the Kaggle root holding ``data/`` (``data/train/<pid>/image|mask``, ``data/test/<pid>/<series>/*.dcm``),
* ``data/`` itself, or any folder holding ``train/`` and/or ``test/``,
* a ``train/`` or ``test/`` folder (its name becomes the split), or any folder whose sub-folders are patients,
* a single Kaggle patient folder (a one-patient dataset, like the bundled sample),
* a NIfTI dataset in the nnU-Net / Medical Segmentation Decathlon / MONAI layout: ``imagesTr/<case>[_0000].nii.gz``
  with ``labelsTr/<case>.nii.gz`` (split ``train``) and ``imagesTs/`` (split ``test``, labels from ``labelsTs/``
  where present); each case is a patient (``kind="nifti"``, ``path`` the image file, ``mask_path`` its label),
* a plain folder of ``.nii`` / ``.nii.gz`` scans (one patient per file, no masks).

Which folders are patients (:class:`PatientEntry`, the Kaggle and NIfTI listing rules) lives in
:mod:`core.store.listing`; write-back (``save_masks`` etc.) in :mod:`core.store.writeback`; both are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from natsort import natsorted

from core.atomic import now_iso, write_text_atomic
from core.errors import HeartsegError
from core.io import open_scan
from core.io.common import kaggle_slice_names, list_files, natsort_paths, require_dir
from core.io.kaggle import IMAGE_DIR, MASK_DIR, is_kaggle_patient
from core.io.masks import write_image_pngs, write_mask_pngs
from core.metrics import dice
from core.preprocess import to_kaggle_scale
from core.store.layout import SOURCE_FILE, state_dir
from core.store.listing import (  # noqa: F401  (is_nifti_dataset, is_dataset_root: part of this module's API)
    PatientEntry,
    _nifti_dataset,
    _patient_entry,
    _patients_in,
    is_dataset_root,
    is_nifti_dataset,
)
from core.store.writeback import (  # noqa: F401
    REVIEW_STATES,
    MaskVersion,
    list_versions,
    read_review,
    recover_patient,
    restore_version,
    review_states,
    review_summary,
    set_review_states,
    write_review,
)
from core.store.writeback import save_masks as _save_masks_in
from core.types import CancelToken, PreviewFn, ProgressFn, Volume, as_path

#: Suggested loss weight for slices a clinician corrected (training decides whether to use it).
CORRECTED_WEIGHT_HINT = 2.0
_SPLITS = ("train", "test")
_PID_OK = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class TrainingPair:
    """One training slice: 8-bit image PNG, 0/255 mask PNG, its review state and a suggested loss weight."""

    pid: str
    image_path: Path
    mask_path: Path
    state: str
    weight_hint: float


@dataclass
class Dataset:
    """An indexed dataset. ``patients`` in natural pid order (train first, then test). ``hidden``: dot-folders
    beside the patients that hold a patient's ``image/`` folder (or hidden NIfTI scans of a NIfTI dataset) but are
    not listed (:func:`is_hidden_name`), so that a command can say it skipped them."""

    root: Path
    patients: list[PatientEntry]
    hidden: list[Path] = field(default_factory=list)

    def entry(self, pid: str) -> PatientEntry:
        for p in self.patients:
            if p.pid == pid:
                return p
        raise HeartsegError(f"no patient {pid!r} in this dataset", self.root)

    def patient_dir(self, pid: str) -> Path:
        return self.entry(pid).path

    @property
    def pids(self) -> list[str]:
        return [p.pid for p in self.patients]

    def load(self, pid: str, *, progress: Optional[ProgressFn] = None,
             cancel: Optional[CancelToken] = None, label: Optional[int] = None,
             preview: Optional[PreviewFn] = None) -> Volume:
        """The patient's scan (with its masks when it has any) via :func:`core.io.open_scan`; an interrupted save
        or restore is finished first (:func:`core.store.writeback.recover_patient`). ``label``: which label of a
        NIfTI label map is the heart (NIfTI datasets); ``preview``: as :func:`core.io.open_scan` (DICOM series)."""
        entry = self.entry(pid)
        if entry.kind == "kaggle_patient":
            recover_patient(entry.path)
        if entry.kind == "nifti":
            return open_scan(entry.path, entry.mask_path, progress=progress, cancel=cancel, label=label)
        return open_scan(entry.path, progress=progress, cancel=cancel, preview=preview)

    def review_states(self, pid: str) -> dict[str, str]:
        entry = self.entry(pid)
        names = [p.stem for p in list_files(entry.path / IMAGE_DIR, (".png",))] if entry.kind == "kaggle_patient" \
            else None
        return review_states(entry.path, names)

    def training_pairs(self, pids: Optional[Iterable[str]] = None, skip_flagged: bool = True) -> list[TrainingPair]:
        """Image/mask pairs of ``pids`` (default: every patient with masks), natural slice order per patient.

        Slices without a mask file are skipped (no target); flagged slices are skipped when ``skip_flagged``.
        Corrected slices carry ``state="corrected"`` and ``weight_hint = CORRECTED_WEIGHT_HINT`` (others 1.0).
        """
        chosen = [self.entry(p) for p in pids] if pids is not None else [p for p in self.patients if p.has_masks]
        pairs = []
        for entry in chosen:
            if entry.kind != "kaggle_patient":
                continue
            images = list_files(entry.path / IMAGE_DIR, (".png",))
            states = review_states(entry.path, [p.stem for p in images])
            mask_dir = entry.path / MASK_DIR
            for image in images:
                mask = mask_dir / image.name
                state = states[image.stem]
                if not mask.is_file() or (skip_flagged and state == "flagged"):
                    continue
                weight = CORRECTED_WEIGHT_HINT if state == "corrected" else 1.0
                pairs.append(TrainingPair(entry.pid, image, mask, state, weight))
        return pairs


def open_dataset(root: str | Path) -> Dataset:
    """Index the dataset at ``root`` (layouts in the module docstring); :class:`HeartsegError` if none fits."""
    root = require_dir(as_path(root))
    base = root / "data" if (root / "data").is_dir() else root
    patients: list[PatientEntry] = []
    hidden: list[Path] = []
    if is_nifti_dataset(root):
        patients = _nifti_dataset(root, hidden)
    elif any((base / s).is_dir() for s in _SPLITS):
        for split in _SPLITS:
            if (base / split).is_dir():
                patients += _patients_in(base / split, split, hidden)
    elif is_kaggle_patient(root):
        patients = [_patient_entry(root, "")]
    else:
        patients = _patients_in(root, root.name if root.name in _SPLITS else "", hidden)
    if not patients:
        where = f" (hidden folders skipped: {', '.join(p.name for p in hidden[:3])}; a name beginning with one " \
                "'.' is hidden, rename it to use it)" if hidden else ""
        raise HeartsegError("no patients found: expected data/train/<patient>/image/*.png (the Kaggle layout), "
                            f"patient folders with image/ sub-folders or imagesTr/ + labelsTr/ NIfTI files{where}",
                            root)
    seen: dict[str, Path] = {}
    for p in patients:
        if p.pid in seen:
            raise HeartsegError(f"patient id {p.pid} appears twice ({seen[p.pid]} and {p.path})", root)
        seen[p.pid] = p.path
    return Dataset(root, patients, natsort_paths(hidden))


#: The patient-level split's defaults (every caller's: heartseg train, the Retrain dialog, the registry's fixed split).
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def patient_split(pids: Iterable[str], val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED,
                  val_patients: Optional[Sequence[str]] = None) -> tuple[list[str], list[str]]:
    """Split patients (never slices) into ``(train_pids, val_pids)``, both in natural order.

    Deterministic and independent of input order: each pid is ranked by ``sha256(f"{seed}:{pid}")`` and the first
    ``round(n * val_fraction)`` (at least 1 when ``n >= 2`` and ``val_fraction > 0``, never all) go to validation.
    ``val_patients`` overrides: exactly those are validation (each must be among ``pids``).
    """
    unique = natsorted(set(str(p) for p in pids))
    if val_patients is not None:
        val = set(str(p) for p in val_patients)
        unknown = natsorted(val - set(unique))
        if unknown:
            raise HeartsegError(f"validation patients not in the dataset: {', '.join(unknown)}")
        return [p for p in unique if p not in val], [p for p in unique if p in val]
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(unique)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    ranked = sorted(unique, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    val = set(ranked[:n_val])
    return [p for p in unique if p not in val], [p for p in unique if p in val]


def _resolve_patient_dir(dataset_or_patient_dir, pid: str) -> Path:
    if isinstance(dataset_or_patient_dir, Dataset):
        return dataset_or_patient_dir.patient_dir(pid)
    path = as_path(dataset_or_patient_dir)
    if not path.exists():
        return path  # save_masks says the folder is gone (moved, renamed, drive disconnected)
    if is_kaggle_patient(path) and (path.name == pid or not (path / pid).is_dir()):
        return path
    return open_dataset(path).patient_dir(pid)


def save_masks(dataset_or_patient_dir, pid: str, masks: np.ndarray, slice_names: Sequence[str],
               review: Optional[dict] = None, ai_masks: Optional[np.ndarray] = None,
               seconds=None) -> Optional[MaskVersion]:
    """Write corrected masks of patient ``pid`` back into the dataset (see :func:`core.store.writeback.save_masks`).

    ``dataset_or_patient_dir``: a :class:`Dataset`, a dataset root, or the patient folder itself.
    ``masks``: ``(n, rows, cols)`` 0/1; ``slice_names``: image stems (``1-001`` ...); ``review``: name -> state.
    Returns the version that holds the masks as they were before this save (``None`` if there were none).
    """
    return _save_masks_in(_resolve_patient_dir(dataset_or_patient_dir, pid), masks, slice_names, review, ai_masks,
                          seconds)


def sanitize_pid(pid: str) -> str:
    """A patient id safe as one folder name: letters, digits, ``.``, ``_``, ``-`` only (other runs and ``..`` ->
    ``_``), no leading/trailing ``._-``, at most 64 characters. Raises :class:`HeartsegError` when nothing usable is
    left."""
    clean = re.sub(r"\.{2,}", "_", _PID_OK.sub("_", str(pid)))
    clean = re.sub(r"_+", "_", clean).strip("._-")[:64].strip("._-")
    if not clean:
        raise HeartsegError(f"invalid patient id {pid!r}")
    return clean


def output_name(name: str) -> str:
    """A folder / file stem for outputs named after a scan or patient: the name comes from a file or a DICOM folder
    (it may be ``..``, hold separators or control characters), so it is sanitised (:func:`sanitize_pid`) and can
    never leave the output folder; ``"scan"`` when nothing usable is left.

    A name that sanitising changed gets ``-`` and 8 hex digits of its SHA-256, so two names that sanitise alike
    (patient folders ``p 1`` and ``p_1``, ``..p`` and ``p``) never write over each other's outputs
    (``p_1-<hash>`` and ``p_1``); a name that is already clean is kept as it is.
    """
    name = str(name)
    try:
        clean = sanitize_pid(name)
    except HeartsegError:
        clean = "scan"
    if clean == name:
        return clean
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{clean[:55]}-{digest}"


def _patients_folder(root: Path) -> Path:
    base = root / "data" if (root / "data").is_dir() else root
    return base / "train" if (base / "train").is_dir() else base


def add_patient(dataset_root: str | Path, pid: str, volume: Volume, masks: Optional[np.ndarray] = None,
                review: Optional[dict] = None, ai_masks: Optional[np.ndarray] = None) -> Path:
    """Add ``volume`` (DICOM, NIfTI, PNG folder ...) to the dataset as a new Kaggle-layout patient.

    Writes ``image/1-NNN.png`` (8-bit, Kaggle scale via :func:`core.preprocess.to_kaggle_scale`) and
    ``mask/1-NNN.png`` (0/255; ``masks`` ``(n, rows, cols)`` 0/1, default ``volume.mask`` or empty) into
    ``<root>/data/train/<pid>`` (or ``<root>/train/<pid>``, or ``<root>/<pid>``), plus ``.heartseg/source.json``
    (where the scan came from, its spacing and affine, which the PNGs cannot hold) and the review sidecar.
    ``ai_masks`` ``(n, rows, cols)`` 0/1: the AI masks, whose Dice with the saved masks goes into the sidecar.
    The folder is built under a temporary name and renamed into place, so a half-written patient never appears.
    ``pid`` is sanitised (:func:`sanitize_pid`); an existing patient is never overwritten. Returns the folder.
    """
    root = require_dir(as_path(dataset_root))
    safe = sanitize_pid(pid)
    parent = _patients_folder(root)
    target = parent / safe
    if target.exists() or target.is_symlink():
        raise HeartsegError(f"patient {safe} already exists; choose another id", target)
    if masks is None:
        masks = volume.mask if volume.mask is not None else np.zeros(volume.voxels.shape, dtype=np.uint8)
    masks = np.asarray(masks)
    if masks.shape != volume.voxels.shape:
        raise ValueError(f"masks shape {masks.shape} differs from the volume's {volume.voxels.shape}")
    names = kaggle_slice_names(volume.n_slices)
    images = to_kaggle_scale(volume)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{safe}.adding-", dir=parent))
    except OSError as exc:
        raise HeartsegError(f"cannot create a patient folder: {exc.strerror or exc}", parent) from exc
    try:
        write_image_pngs(tmp / IMAGE_DIR, images, names)
        write_mask_pngs(tmp / MASK_DIR, masks, names)
        state_dir(tmp).mkdir()
        source = {"pid_requested": str(pid), "source_kind": volume.kind, "source_name": volume.name,
                  "source_path": str(volume.source_files[0]) if volume.source_files else None,
                  "intensity": volume.intensity, "spacing_mm": list(volume.spacing) if volume.spacing else None,
                  "affine": volume.affine.tolist() if volume.affine is not None else None,
                  "metadata": {k: v for k, v in volume.metadata.items() if isinstance(v, (str, int, float, bool))}}
        write_text_atomic(state_dir(tmp) / SOURCE_FILE, json.dumps(source, indent=1))
        states = {(names[k] if isinstance(k, (int, np.integer)) else str(k)): v for k, v in (review or {}).items()}
        if not set(states.values()) <= set(REVIEW_STATES):
            raise ValueError(f"review states must be among {REVIEW_STATES}")
        if ai_masks is not None and np.shape(ai_masks) != masks.shape:
            raise ValueError(f"ai_masks shape {np.shape(ai_masks)} differs from masks {masks.shape}")
        stamp = now_iso()
        slices = {}
        for i, name in enumerate(names):
            rec = {"state": states.get(name, "not_reviewed"), "saved_at": stamp}
            if ai_masks is not None:
                rec["dice_ai"] = round(dice(ai_masks[i], masks[i]), 6)
            slices[name] = rec
        write_review(tmp, {"patient": safe, "slices": slices})
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HeartsegError(f"cannot add the patient: {exc.strerror or exc}", target) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

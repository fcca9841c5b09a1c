"""Which patients a dataset folder holds: :class:`PatientEntry` and the listing rules of :func:`core.store.dataset.
open_dataset` — Kaggle patient folders (image/ + mask/ PNGs, or one DICOM series), the dot-folder rules, and
NIfTI datasets (nnU-Net / MSD ``imagesTr`` + ``labelsTr``, or a plain folder of ``.nii(.gz)`` scans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.errors import HeartsegError
from core.io import looks_like_dataset_root
from core.io.common import is_hidden_name, list_dirs, list_files, natsort_paths, scan_folder
from core.io.dicom import is_dicom_folder
from core.io.kaggle import IMAGE_DIR, MASK_DIR, is_kaggle_patient
from core.io.nifti import nifti_slice_count, nifti_stem
from core.store.writeback import recover_patient, review_summary


@dataclass(frozen=True)
class PatientEntry:
    """One patient of a dataset.

    ``kind``: ``"kaggle_patient"`` (image/ + mask/ PNGs) or ``"dicom"`` (a test patient's series folder).
    ``n_slices``: number of image files; ``has_masks``: a ``mask/`` folder with at least one PNG;
    ``review``: counts per review state (see :data:`REVIEW_STATES`).
    """

    pid: str
    split: str  # "train", "test" or "" when the layout does not say
    path: Path
    n_slices: int
    has_masks: bool
    kind: str = "kaggle_patient"
    review: dict = field(default_factory=dict)
    mask_path: Optional[Path] = None  # NIfTI datasets: the case's label file (labelsTr/<case>.nii.gz)


def _patient_entry(folder: Path, split: str) -> Optional[PatientEntry]:
    if is_kaggle_patient(folder):
        try:
            recover_patient(folder)  # an interrupted save / restore is finished before anything is counted
        except HeartsegError:
            pass  # said again, naming the record, when the patient is loaded or saved
        n = len(list_files(folder / IMAGE_DIR, (".png",)))
        mask_dir = folder / MASK_DIR
        has_masks = mask_dir.is_dir() and bool(list_files(mask_dir, (".png",)))
        return PatientEntry(folder.name, split, folder, n, has_masks, "kaggle_patient", review_summary(folder, n))
    series = [d for d in list_dirs(folder) if is_dicom_folder(d)]
    if len(series) == 1 or (not series and is_dicom_folder(folder)):
        where = series[0] if series else folder
        n = len(list_files(where))
        return PatientEntry(folder.name, split, where, n, False, "dicom", {})
    return None


#: heartseg's own dot-folders beside patients: the state folder and :func:`add_patient`'s half-built patients.
_OWN_FOLDER = re.compile(r"^\.(?:heartseg$|.+\.adding-)", re.IGNORECASE)


def _sub_folders(folder: Path, hidden: list[Path]) -> list[Path]:
    """Sub-folders of ``folder`` that may be patients, natural order; hidden ones (:func:`is_hidden_name`) that
    hold an ``image/`` folder, other than heartseg's own, are appended to ``hidden`` instead."""
    out = []
    try:
        for path in scan_folder(folder, dirs=True):
            if not is_hidden_name(path.name):
                out.append(path)
            elif not _OWN_FOLDER.match(path.name) and is_kaggle_patient(path):
                hidden.append(path)
    except OSError as exc:
        raise HeartsegError(f"cannot list folder: {exc.strerror or exc}", folder) from exc
    return natsort_paths(out)


def _patients_in(folder: Path, split: str, hidden: list[Path]) -> list[PatientEntry]:
    return [e for e in (_patient_entry(d, split) for d in _sub_folders(folder, hidden)) if e is not None]


_NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: nnU-Net's channel suffix on image files (``case_0000.nii.gz``).
_CHANNEL = re.compile(r"_(\d{4})$")


def _nifti_files(folder: Path, hidden: Optional[list[Path]] = None) -> list[Path]:
    """The ``.nii`` / ``.nii.gz`` files directly in ``folder`` (links followed, broken ones skipped), natural order.
    As for patient folders, ``..p.nii.gz`` is listed and a hidden one (:func:`is_hidden_name`) is appended to
    ``hidden`` instead (macOS ``._*`` resource forks are not scans: ignored)."""
    if not folder.is_dir():
        return []
    out = []
    for path in scan_folder(folder, name_ok=lambda name: name.lower().endswith(_NIFTI_SUFFIXES)):
        if not is_hidden_name(path.name):
            out.append(path)
        elif hidden is not None and not path.name.startswith("._"):
            hidden.append(path)
    return natsort_paths(out)


def is_nifti_dataset(root: Path) -> bool:
    """True for an ``imagesTr`` / ``imagesTs`` (nnU-Net, MSD) layout or a folder holding NIfTI files only."""
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return True
    try:
        return bool(_nifti_files(root)) and not list_dirs(root) and not list_files(root, (".png", ".dcm"))
    except HeartsegError:
        return False


def is_dataset_root(path: Path) -> bool:
    """The one rule for "this folder holds several scans, open it as a dataset" (``heartseg predict``, the window's
    Open and drops): a Kaggle dataset root or a folder of Kaggle patients
    (:func:`core.io.looks_like_dataset_root`) or a NIfTI dataset (:func:`is_nifti_dataset`), and not itself one
    scan: not a Kaggle patient's folder, and not a DICOM series folder (whose slices often have no suffix, so a
    NIfTI conversion saved beside them must not turn the series into a "folder of NIfTI files")."""
    path = Path(path)
    if not path.is_dir() or is_kaggle_patient(path):
        return False
    if looks_like_dataset_root(path):
        return True
    return is_nifti_dataset(path) and not is_dicom_folder(path)


def _nifti_cases(images: Path, labels: Optional[Path], split: str, hidden: list[Path]) -> list[PatientEntry]:
    """One entry per case of ``images`` (channel 0 only: ``_0001`` ... files of multi-channel cases are skipped),
    its mask ``labels/<case>.nii(.gz)`` where present."""
    label_of = {nifti_stem(p): p for p in _nifti_files(labels)} if labels is not None else {}
    out = []
    for path in _nifti_files(images, hidden):
        stem = nifti_stem(path)
        m = _CHANNEL.search(stem)
        if m and m.group(1) != "0000":
            continue
        case = stem[: m.start()] if m else stem
        mask = label_of.get(case) or label_of.get(stem)
        out.append(PatientEntry(case, split, path, nifti_slice_count(path), mask is not None, "nifti", {}, mask))
    return out


def _nifti_dataset(root: Path, hidden: list[Path]) -> list[PatientEntry]:
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        patients = []
        for split, images, labels in (("train", "imagesTr", "labelsTr"), ("test", "imagesTs", "labelsTs")):
            if (root / images).is_dir():
                patients += _nifti_cases(root / images, root / labels if (root / labels).is_dir() else None, split,
                                         hidden)
        return patients
    return _nifti_cases(root, None, "", hidden)

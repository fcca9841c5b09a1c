"""Scan readers: :func:`open_scan` turns a path into a :class:`~core.types.Volume`.

Accepted inputs (detected in this order):

1. a NIfTI file (``.nii`` / ``.nii.gz``) -> :func:`core.io.nifti.read_nifti` (``mask_path``: a NIfTI mask);
2. a Kaggle patient folder ``<pid>/image/*.png`` (+ ``mask/``) -> :func:`core.io.kaggle.read_kaggle_patient`;
3. a folder of PNG slices -> :func:`core.io.kaggle.read_png_folder`;
4. a folder holding one DICOM series -> :func:`core.io.dicom.read_dicom_series`.

A Kaggle dataset root (``data/train/...``) is refused with a hint to use :func:`core.store.dataset.open_dataset`.
Every problem is a one-line :class:`~core.errors.HeartsegError` ``<path>: <problem>``. Size limits:
:data:`MAX_SLICE_SIDE`, :data:`MAX_TOTAL_VOXELS` (checked from headers before allocating).

``mask_path`` (optional): a NIfTI mask (for any source with the same grid), a folder of PNG masks matched to
slices by file stem (``Volume.slice_names``), or a DICOM-SEG file of a DICOM series (frames matched to slices by
their source images' SOP Instance UIDs: :func:`core.io.dicom_seg.read_dicom_seg`). A NIfTI label map is read
through :func:`core.io.masks.binary_from_labels` (``label=N`` picks one label of a multi-label map).

:func:`geometry_warnings` words what the reader flagged (irregular slice spacing, merged series, a non-axial
series, qform / sform disagreement) as one line each, for the CLI and the window.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from core.errors import HeartsegError
from core.io.common import MAX_SLICE_SIDE, MAX_TOTAL_VOXELS, list_dirs, list_files, require_dir
from core.io.dicom import is_dicom_folder, read_dicom_series
from core.io.dicom_seg import is_dicom_seg_path, read_dicom_seg
from core.io.kaggle import is_kaggle_patient, read_kaggle_patient, read_mask_folder, read_png_folder
from core.io.masks import write_mask_nifti, write_mask_png, write_mask_pngs, write_scan_nifti
from core.io.nifti import is_nifti_path, read_nifti, read_nifti_mask
from core.types import CancelToken, PreviewFn, ProgressFn, Volume, as_path

__all__ = ["open_scan", "MAX_SLICE_SIDE", "MAX_TOTAL_VOXELS", "write_mask_png",
           "write_mask_pngs", "write_mask_nifti", "write_scan_nifti", "read_nifti_mask", "looks_like_dataset_root",
           "geometry_warnings"]


def geometry_warnings(volume: Volume) -> list[str]:
    """One line per geometry problem the reader flagged in ``volume.metadata`` (empty when none): the scan is
    read, but a measurement or the model's slice-wise view may be off."""
    md = volume.metadata or {}
    out = []
    if md.get("irregular_spacing"):
        out.append("slice spacing is irregular (a missing or duplicated slice?): volumes and 3-D views assume "
                   f"a uniform {volume.spacing[0]:.2f} mm step" if volume.spacing else
                   "slice spacing is irregular (a missing or duplicated slice?)")
    if md.get("merged_series"):
        out.append(f"the folder may hold two series merged into one ({md['merged_series']}); check the slices")
    orientation = md.get("orientation")
    if orientation in ("sagittal", "coronal"):
        out.append(f"{orientation} series: resliced to axial slices for the model (which was trained on axial "
                   "slices; voxels permuted, not resampled), the mask put back on the series' own slices")
    elif orientation == "oblique":
        tilt = md.get("oblique_tilt_deg")
        out.append("oblique series: the model segments the most axial planes of its voxel grid (axes permuted, "
                   "not resampled), " + (f"tilted {float(tilt):.0f} degrees from true axial" if tilt is not None
                                         else "tilted from true axial") + "; expect a lower accuracy")
    if md.get("nonfinite_voxels"):
        out.append(f"{md['nonfinite_voxels']} voxels hold no number (NaN or infinite); they are shown, exported and "
                   f"predicted as the scan's lowest value ({float(md.get('nonfinite_fill', 0.0)):.0f})")
    if md.get("qform_sform_disagree"):
        out.append("the NIfTI qform and sform disagree: heartseg (like nibabel) uses the sform, ITK-based tools "
                   "may use the qform and show the scan elsewhere or mirrored")
    return out


def looks_like_dataset_root(folder: Path) -> bool:
    """True for a Kaggle dataset root (``data/train`` or ``train``/``test`` holding patients) or a folder whose
    sub-folders are Kaggle patients."""
    for cand in (folder / "data" / "train", folder / "data" / "test", folder / "train", folder / "test"):
        if cand.is_dir():
            return True
    try:
        subs = list_dirs(folder)
    except HeartsegError:
        return False
    return any(is_kaggle_patient(s) for s in subs[:50])


def open_scan(path: str | Path, mask_path: str | Path | None = None, *,
              progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
              label: Optional[int] = None, preview: Optional[PreviewFn] = None,
              series_uid: Optional[str] = None) -> Volume:
    """Open one scan (see the module docstring for what ``path`` may be) -> :class:`~core.types.Volume`.

    ``voxels`` is ``(n_slices, rows, cols)`` with slice 0 the most superior slice, rows anterior -> posterior,
    columns patient right -> left. ``progress`` receives :class:`~core.types.Progress` per batch of slices;
    ``cancel`` is checked per batch (raises :class:`~core.errors.Cancelled`). ``label``: which label of a NIfTI
    label-map mask is the heart (default: the only one; several are refused naming them). ``preview``: for a DICOM
    series, called with the middle slice as soon as it is decoded (:func:`core.io.dicom.read_dicom_series`);
    ``series_uid``: which series of a DICOM folder holding several.
    """
    path = as_path(path)
    mask_path = None if mask_path is None else as_path(mask_path)
    if is_nifti_path(path) and not path.is_dir():
        _require_regular_file(path)
        if mask_path is not None and is_nifti_path(mask_path):
            _require_regular_file(mask_path)
        vol = read_nifti(path, mask_path if mask_path is not None and is_nifti_path(mask_path) else None,
                         cancel=cancel, label=label)
        if mask_path is not None and not is_nifti_path(mask_path):
            _attach_png_or_seg(vol, mask_path)
        return vol
    try:
        path.stat()
    except OSError as exc:
        raise HeartsegError(f"cannot open: {exc.strerror or exc}", path) from exc
    if not path.is_dir():
        raise HeartsegError("not a scan: expected a .nii/.nii.gz file or a folder of PNG or DICOM slices "
                            "(to open one slice, open the folder that holds it)", path)
    require_dir(path)
    if is_kaggle_patient(path):
        vol = read_kaggle_patient(path, progress=progress, cancel=cancel)
    elif list_files(path, (".png",)):
        vol = read_png_folder(path, progress=progress, cancel=cancel)
    elif is_dicom_folder(path):
        vol = read_dicom_series(path, progress=progress, cancel=cancel, preview=preview, series_uid=series_uid)
    elif _single_subfolder(path) is not None:  # Kaggle test patient: <pid>/<series folder>/*.dcm
        return open_scan(_single_subfolder(path), mask_path, progress=progress, cancel=cancel, label=label,
                         preview=preview, series_uid=series_uid)
    elif looks_like_dataset_root(path):
        raise HeartsegError("this is a dataset folder holding many patients; open it as a dataset "
                            "(core.store.dataset.open_dataset / File > Open dataset) or pick one patient folder", path)
    elif not list_files(path) and not list_dirs(path):
        raise HeartsegError("the folder is empty", path)
    else:
        raise HeartsegError("no scan found: the folder holds no PNG slices, DICOM series or image/ sub-folder",
                            path)
    if mask_path is not None:
        if is_nifti_path(mask_path):
            vol.mask = read_nifti_mask(mask_path, vol, label=label)
            vol.mask_present = np.ones(vol.n_slices, dtype=bool)
        else:
            _attach_png_or_seg(vol, mask_path)
    return vol


def _require_regular_file(path: Path) -> None:
    """Refuse a FIFO, device or socket named like a scan (opening a FIFO would block forever)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise HeartsegError(f"cannot open: {exc.strerror or exc}", path) from exc
    if not stat.S_ISREG(mode):
        raise HeartsegError("is not a regular file (a pipe, device or socket cannot be read as a scan)", path)


def _single_subfolder(folder: Path) -> Optional[Path]:
    """The only sub-folder of ``folder`` when it holds no files and that sub-folder holds DICOM, else None."""
    subs = list_dirs(folder)
    if len(subs) == 1 and not list_files(folder) and not is_kaggle_patient(subs[0]) and is_dicom_folder(subs[0]):
        return subs[0]
    return None


def _attach_png_or_seg(vol: Volume, mask_path: Path) -> None:
    """A DICOM-SEG file (read on the series' grid) or a folder of PNG masks."""
    if not mask_path.is_dir() and is_dicom_seg_path(mask_path):
        vol.mask = read_dicom_seg(mask_path, vol)
        vol.mask_present = np.ones(vol.n_slices, dtype=bool)
    else:
        _attach_png_masks(vol, mask_path)


def _attach_png_masks(vol: Volume, mask_dir: Path) -> None:
    mask, present, orphans = read_mask_folder(require_dir(mask_dir), vol.slice_names, vol.slice_shape)
    if not present.any():
        raise HeartsegError(f"no mask PNG matches a slice name (expected names like {vol.slice_names[0]}.png)",
                            mask_dir)
    vol.mask, vol.mask_present = mask, present
    if orphans:
        vol.metadata["orphan_masks"] = orphans

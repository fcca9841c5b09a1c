"""Save for a NIfTI scan: its mask NIfTI written back on its own grid, atomically, the previous file kept.

A NIfTI scan has no Kaggle patient folder to save into (:mod:`core.store.writeback`); its mask is one file beside
it (``labelsTr/<case>.nii.gz``, ``heart.nii.gz``, a label map of another tool). :func:`save_nifti_mask` writes the
working mask over that file:

* the file's own array order, data type and header (sform / qform with their codes, zooms) are kept, so every
  tool pairs it with the scan exactly as before;
* a plain mask keeps its foreground value (1, 255 or its one label); a label map (``label=N``) keeps its other
  labels: voxels of ``N`` outside the mask become 0, mask voxels become ``N``;
* the file as it was is copied first to ``<folder>/.heartseg/versions/<mask name>/<UTC time>.nii[.gz]``
  (:func:`mask_versions_dir`), so no save loses a mask;
* a new file (no mask yet) is written as a uint8 0/1 mask on the scan's grid (:func:`core.io.write_mask_nifti`).

Errors are one-line :class:`~core.errors.HeartsegError` naming the file.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np

from core.atomic import write_with_atomic
from core.errors import HeartsegError
from core.io import write_mask_nifti
from core.io.masks import mask_labels
from core.io.nifti import DISPLAY_AXCODES, nifti_stem, read_nifti_mask
from core.store.layout import versions_dir
from core.types import Volume, as_path


def mask_versions_dir(mask_path: str | Path) -> Path:
    """``<folder>/.heartseg/versions/<mask name without .nii(.gz)>``: earlier versions of one mask file."""
    mask_path = as_path(mask_path)
    return versions_dir(mask_path.parent) / nifti_stem(mask_path)


def _keep_version(path: Path) -> Path:
    """Copy ``path`` into :func:`mask_versions_dir` (atomically) -> the copy."""
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    folder = mask_versions_dir(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}{suffix}"
    n = 1
    while target.exists():
        target = folder / f"{stamp}-{n}{suffix}"
        n += 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_with_atomic(target, lambda tmp: shutil.copyfile(path, tmp))
    except OSError as exc:
        raise HeartsegError(f"cannot keep the previous mask before saving: {exc.strerror or exc}", path) from exc
    return target


def _in_file_order(mask: np.ndarray, img) -> np.ndarray:
    """A ``(n_slices, rows, cols)`` display-order mask -> the array order of ``img`` (the file it came from)."""
    display = nib.orientations.axcodes2ornt(DISPLAY_AXCODES)
    native = nib.orientations.ornt_transform(display, nib.orientations.io_orientation(img.affine))
    return nib.orientations.apply_orientation(np.asarray(mask).transpose(2, 1, 0), native)


def save_nifti_mask(path: str | Path, mask: np.ndarray, volume: Volume, *,
                    label: Optional[int] = None) -> Optional[Path]:
    """Write ``mask`` ``(n_slices, rows, cols)`` 0/1 of NIfTI scan ``volume`` over the mask file ``path`` (see the
    module docstring); ``label``: the label of a label map the mask is (None: a plain mask). A missing ``path``
    is created as a uint8 0/1 mask on the scan's grid. Returns the kept copy of the previous file (None: new file).

    The existing file must be on the scan's grid (:func:`core.io.nifti.read_nifti_mask` checks it before
    anything is written)."""
    path = as_path(path)
    m = np.asarray(mask)
    if m.shape != volume.voxels.shape:
        raise ValueError(f"mask shape {m.shape} differs from the volume's {volume.voxels.shape}")
    if not path.exists():
        write_mask_nifti(path, m, volume)
        return None
    read_nifti_mask(path, volume, label=label)  # on the scan's grid, and holds ``label``: else a refusal
    img = nib.load(str(path))
    try:
        old = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001 - truncated gzip, zlib errors ...
        raise HeartsegError(f"damaged or truncated NIfTI data ({type(exc).__name__})", path) from exc
    if old.ndim == 4:
        old = old[..., 0]
    on = _in_file_order(m, img) > 0
    if on.shape != old.shape:
        raise HeartsegError(f"mask file holds {old.shape} voxels, the scan {on.shape}; not saved", path)
    if label is None:
        labels = mask_labels(old)
        value = labels[0] if len(labels) == 1 else 1
        new = np.zeros(old.shape, dtype=old.dtype)
        new[on] = value
    else:
        new = old.copy()
        new[old == label] = 0
        new[on] = label
    stored = np.dtype(img.get_data_dtype())
    if stored.kind in "iub" and new.dtype != stored:
        new = new.astype(stored)  # labels are whole numbers: back to the file's own type, unscaled
    header = img.header.copy()
    header.set_data_dtype(new.dtype)
    if stored.kind in "iub":
        header.set_slope_inter(1.0, 0.0)
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    out = nib.Nifti1Image(new.reshape(img.shape), None, header=header)
    out.header["qform_code"], out.header["sform_code"] = qcode, scode
    kept = _keep_version(path)
    write_with_atomic(path, lambda tmp: nib.save(out, str(tmp)))
    return kept

"""Sagittal and coronal series shown to the axial 2-D model as axial slices, and the result put back.

The model was trained on axial slices (rows anterior -> posterior, columns patient right -> left). A DICOM series
stored as sagittal or coronal slices (``metadata["orientation"]``, :mod:`core.io.dicom`) keeps its own grid in the
:class:`~core.types.Volume` (the window shows it, masks are written on it); inference runs on
:func:`axial_view`, the same voxels with their axes permuted and flipped into the display convention
(``core.io.nifti.DISPLAY_AXCODES``, what NIfTI scans are read as), and :func:`to_stored` permutes the result back.
No voxel is interpolated and no HU value changes: the axial view of a sagittal series made from an axial scan is
that scan's array exactly, so the model gives exactly the axial scan's masks.

An oblique series is permuted to the axis nearest to the body's superior-inferior axis
(``nibabel.orientations.io_orientation``), the same rule: its model slices stay tilted (the reader's warning says
so). NIfTI scans are reoriented to the display axes when read, so they are always axial here; PNG slices have no
geometry and are taken as axial.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import nibabel as nib
import numpy as np

from core.io.nifti import DISPLAY_AXCODES
from core.types import Volume


def axial_orientation(volume: Volume) -> Optional[np.ndarray]:
    """The nibabel orientation transform ``(3, 2)`` taking ``volume``'s ``(col, row, slice)`` axes to the display
    axes (L, P, I), or ``None`` when the volume's slices are already (nearest to) axial, or it has no affine."""
    affine = volume.affine
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        return None
    current = nib.orientations.io_orientation(affine)
    if int(current[2, 0]) == 2:  # the slice axis already runs along the body's superior-inferior axis
        return None
    return nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt(DISPLAY_AXCODES))


def _inverse(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt`` (input axis ``i`` went to ``ornt[i, 0]``, flipped by
    ``ornt[i, 1]``)."""
    inv = np.empty_like(np.asarray(ornt, dtype=np.float64))
    for i, (axis, flip) in enumerate(np.asarray(ornt)):
        inv[int(axis)] = (i, flip)
    return inv


def _permute(array: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """``(slice, row, col)`` array -> the ``(slice, row, col)`` array of ``ornt`` applied on ``(col, row, slice)``
    axes (a view: axes swapped and flipped, nothing copied)."""
    return nib.orientations.apply_orientation(array.transpose(2, 1, 0), ornt).transpose(2, 1, 0)


def axial_view(volume: Volume, ornt: np.ndarray) -> Volume:
    """``volume`` with its axes permuted by ``ornt`` (see :func:`axial_orientation`): axial slices, slice 0 most
    superior, rows anterior -> posterior, columns right -> left; the same voxel values (a contiguous copy), the
    permuted spacing and the affine of the new axes. Consecutive slices are neighbours (they are rows or columns
    of the stored grid), so ``irregular_spacing`` (which concerned the stored slices) is dropped."""
    xyz_shape = volume.voxels.shape[::-1]
    voxels = np.ascontiguousarray(_permute(volume.voxels, ornt))
    mask = None if volume.mask is None else np.ascontiguousarray(_permute(volume.mask, ornt))
    spacing = None
    if volume.spacing is not None:
        col_row_slice = np.array(volume.spacing[::-1], dtype=np.float64)
        new = np.empty(3)
        new[ornt[:, 0].astype(int)] = col_row_slice
        spacing = (float(new[2]), float(new[1]), float(new[0]))
    affine = volume.affine @ nib.orientations.inv_ornt_aff(ornt, xyz_shape)
    metadata = {k: v for k, v in (volume.metadata or {}).items() if k != "irregular_spacing"}
    metadata["resliced_from"] = metadata.get("orientation", "")
    metadata["orientation"] = "axial"
    n = voxels.shape[0]
    return replace(volume, voxels=voxels, spacing=spacing, affine=affine, mask=mask,
                   mask_present=None if mask is None else np.ones(n, dtype=bool),
                   source_files=[volume.source_files[0]] * n, metadata=metadata,
                   source_grid=None)


def stored_view(array: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """An ``(slice, row, col)`` array on the axial view (masks, probabilities) -> the same values on the stored
    grid of the volume :func:`axial_view` was made from (a view: nothing copied)."""
    return _permute(array, _inverse(ornt))


def to_stored(array: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """:func:`stored_view` as a C-contiguous array."""
    return np.ascontiguousarray(stored_view(array, ornt))


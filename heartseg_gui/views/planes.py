"""Geometry of the three planes (numpy only): what each view shows, its aspect ratio, its edge letters, and the
rows of a slice stack whose numbering skips.

heartseg's volumes are ``(n_slices, rows, cols)`` in one display convention (see :mod:`core.io.nifti`): slice 0
most superior, rows anterior -> posterior, columns patient right -> left (radiological: the patient's right on the
screen's left). So, with plane images as numpy *views* of the volume (no copy of the volume, ever):

* axial at slice ``s``: ``voxels[s]`` ``(rows, cols)``; top A, bottom P, left R, right L;
* coronal at row ``r``: ``voxels[:, r, :]`` ``(n_slices, cols)``; top S, bottom I, left R, right L;
* sagittal at column ``c``: ``voxels[:, :, c]`` ``(n_slices, rows)``; top S, bottom I, left A, right P.

A Kaggle patient whose slice names skip numbers (``1-057, 1-058, 1-061``) is not a continuous stack: in the
coronal and sagittal planes each slice sits on the *display row* of its number (:class:`StackRows`) and the missing
numbers are blank rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.postprocess import slice_numbers
from core.types import Volume

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
PLANES = (AXIAL, CORONAL, SAGITTAL)

#: orientation letters at the (top, bottom, left, right) edges of each plane
LETTERS = {AXIAL: ("A", "P", "R", "L"), CORONAL: ("S", "I", "R", "L"), SAGITTAL: ("S", "I", "A", "P")}

#: a stack whose numbering would need more display rows than this many times its slices is drawn without gaps
MAX_GAP_FACTOR = 8


def plane_axis(plane: str) -> int:
    """The volume axis a plane's index runs along (axial 0: slices, coronal 1: rows, sagittal 2: columns)."""
    return PLANES.index(plane)


def plane_of(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2-D view of ``volume`` ``(n_slices, rows, cols)`` in ``plane`` at ``index`` (shares its memory)."""
    if plane == AXIAL:
        return volume[index]
    if plane == CORONAL:
        return volume[:, index, :]
    return volume[:, :, index]


def pixel_aspect(spacing: tuple[float, float, float] | None, plane: str) -> float:
    """Width / height of one plane pixel on screen, from ``spacing`` ``(slice, row, col)`` mm (1.0 unknown)."""
    if spacing is None or min(spacing) <= 0:
        return 1.0
    s, r, c = (float(v) for v in spacing)
    return {AXIAL: c / r, CORONAL: c / s, SAGITTAL: r / s}[plane]


@dataclass(frozen=True)
class StackRows:
    """Where the slices of a stack go in the coronal and sagittal planes.

    ``row_of_slice`` ``(n_slices,)`` intp: the display row of each slice; ``slice_of_row`` ``(n_rows,)`` intp: the
    slice on each display row, -1 on a gap. Without gaps both are ``arange(n_slices)``."""

    row_of_slice: np.ndarray
    slice_of_row: np.ndarray

    @classmethod
    def contiguous(cls, n: int) -> StackRows:
        a = np.arange(n, dtype=np.intp)
        return cls(a, a.copy())

    @property
    def n_rows(self) -> int:
        return int(self.slice_of_row.size)

    @property
    def has_gaps(self) -> bool:
        return self.n_rows != self.row_of_slice.size

    @property
    def missing(self) -> int:
        """Number of blank display rows (slice numbers missing from the stack)."""
        return self.n_rows - int(self.row_of_slice.size)

    def slice_at(self, row: float) -> int:
        """The slice shown on display row ``row`` or, on a gap, the nearest slice (ties: the upper one)."""
        k = int(np.clip(np.floor(row + 0.5), 0, self.n_rows - 1))
        if self.slice_of_row[k] >= 0:
            return int(self.slice_of_row[k])
        return int(np.argmin(np.abs(self.row_of_slice - k)))

    def spread(self, plane_image: np.ndarray, fill) -> np.ndarray:
        """A ``(n_slices, w)`` plane image as ``(n_rows, w)`` with ``fill`` on the gaps (itself without gaps)."""
        if not self.has_gaps:
            return plane_image
        out = np.full((self.n_rows,) + plane_image.shape[1:], fill, dtype=plane_image.dtype)
        out[self.row_of_slice] = plane_image
        return out


def stack_rows(volume: Volume) -> StackRows:
    """The :class:`StackRows` of ``volume``: gaps only for PNG / Kaggle stacks whose slice names end in numbers
    that run in one direction and skip some (DICOM and NIfTI slices are placed by their positions already)."""
    n = volume.n_slices
    if volume.kind in ("dicom", "nifti") or n < 2:
        return StackRows.contiguous(n)
    numbers = slice_numbers(volume.slice_names)
    if numbers is None:
        return StackRows.contiguous(n)
    steps = np.diff(np.asarray(numbers, dtype=np.int64))
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return StackRows.contiguous(n)
    rows = np.abs(np.asarray(numbers, dtype=np.int64) - numbers[0]).astype(np.intp)
    n_rows = int(rows[-1]) + 1
    if n_rows == n or n_rows > MAX_GAP_FACTOR * n:
        return StackRows.contiguous(n)
    slice_of_row = np.full(n_rows, -1, dtype=np.intp)
    slice_of_row[rows] = np.arange(n, dtype=np.intp)
    return StackRows(rows, slice_of_row)

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

import threading
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


class MaskBounds:
    """Per-slice bounding boxes of a mask volume's non-zero voxels, so that a sagittal plane reads only the slices
    and rows that can hold mask: read in full, ``mask[:, :, c]`` of a 512³ mask touches one cache line per voxel
    (about 2 ms on the build machine), and a heart covers a small part of the slices and rows.

    The boxes only ever cover too much, never too little: :meth:`grow` widens them by a changed rectangle (an
    erased voxel leaves its box as it was), :meth:`recompute` measures slices again from the mask."""

    def __init__(self, mask: np.ndarray):
        n, rows, cols = mask.shape
        self.shape = (n, rows, cols)
        self.r0 = np.full(n, rows, np.intp)
        self.r1 = np.zeros(n, np.intp)
        self.c0 = np.full(n, cols, np.intp)
        self.c1 = np.zeros(n, np.intp)
        self.recompute(mask)

    def recompute(self, mask: np.ndarray, slices=None) -> None:
        """Measure ``slices`` (default: every slice) of ``mask`` again."""
        n, rows, cols = self.shape
        idx = np.arange(n) if slices is None else np.unique(np.asarray(list(slices), dtype=np.intp))
        idx = idx[(idx >= 0) & (idx < n)]
        if idx.size == 0:
            return
        sub = mask[idx] if slices is not None else mask
        rows_any = sub.any(axis=2)   # (k, rows)
        cols_any = sub.any(axis=1)   # (k, cols)
        has = rows_any.any(axis=1)
        self.r0[idx] = np.where(has, rows_any.argmax(axis=1), rows)
        self.r1[idx] = np.where(has, rows - rows_any[:, ::-1].argmax(axis=1), 0)
        self.c0[idx] = np.where(has, cols_any.argmax(axis=1), cols)
        self.c1[idx] = np.where(has, cols - cols_any[:, ::-1].argmax(axis=1), 0)

    def grow(self, slice_index: int, row0: int, row1: int, col0: int, col1: int) -> None:
        """Voxels in ``[row0, row1) x [col0, col1)`` of slice ``slice_index`` may have changed."""
        s = int(slice_index)
        if not 0 <= s < self.shape[0]:
            return
        self.r0[s], self.r1[s] = min(self.r0[s], int(row0)), max(self.r1[s], int(row1))
        self.c0[s], self.c1[s] = min(self.c0[s], int(col0)), max(self.c1[s], int(col1))

    def sagittal(self, mask: np.ndarray, col: int) -> np.ndarray:
        """``mask[:, :, col]`` (a new ``(n_slices, rows)`` array), reading only inside the boxes."""
        n, rows, _cols = self.shape
        hit = np.flatnonzero((self.c0 <= col) & (col < self.c1))
        out = np.zeros((n, rows), dtype=mask.dtype)
        if hit.size:
            lo, hi = int(self.r0[hit].min()), int(self.r1[hit].max())
            out[hit, lo:hi] = mask[hit, lo:hi, col]
        return out


class ColumnMajorCopy:
    """The scan's voxels with the columns first, ``(cols, n_slices, rows)`` in C order, so that a sagittal plane is
    one contiguous read (``data[c]``) instead of one cache line per voxel (``voxels[:, :, c]``: about 2 ms for a
    512³ int16 scan on the build machine, the largest part of a crosshair move). The scan's values never change
    while it is open, so the copy cannot go stale; it costs as much memory again as the voxels (256 MB for 512³) and
    is built only for scans of at least :data:`MIN_VOXELS` voxels, once the planes are shown, in a background thread
    (numpy copies without the GIL): until it is ready, :meth:`sagittal` reads the scan in place."""

    #: smaller scans read a sagittal plane in place fast enough (256 x 512² int16: under 1 ms)
    MIN_VOXELS = 64 * 2**20

    def __init__(self, voxels: np.ndarray):
        self.source = voxels
        self.data: np.ndarray | None = None
        self._thread = threading.Thread(target=self._build, name="heartseg-column-copy", daemon=True)
        self._thread.start()

    @classmethod
    def wanted(cls, voxels: np.ndarray) -> bool:
        return voxels.ndim == 3 and voxels.size >= cls.MIN_VOXELS

    def _build(self) -> None:
        src = self.source
        n, rows, cols = src.shape
        out = np.empty((cols, n, rows), dtype=src.dtype)
        for c0 in range(0, cols, 32):   # 32 columns: each 64-byte line of the source is read once
            out[c0:c0 + 32] = src[:, :, c0:c0 + 32].transpose(2, 0, 1)
        self.data = out

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.data is not None

    def sagittal(self, col: int) -> np.ndarray:
        """``voxels[:, :, col]`` ``(n_slices, rows)`` (a view: of the copy once it is built, else of the scan)."""
        data = self.data
        return data[col] if data is not None else self.source[:, :, col]


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

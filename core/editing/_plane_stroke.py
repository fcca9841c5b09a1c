"""Brush drags in a reformatted plane (coronal or sagittal), for :class:`core.editing.MaskEditor`.

A plane of the ``(n_slices, rows, cols)`` mask is a 2-D numpy *view* (no copy):

* ``"axial"`` at slice ``i``: ``mask[i]`` -> ``(rows, cols)``, plane row = mask row, plane col = mask col;
* ``"coronal"`` at row ``r``: ``mask[:, r, :]`` -> ``(n_slices, cols)``, plane row = slice, plane col = mask col;
* ``"sagittal"`` at column ``c``: ``mask[:, :, c]`` -> ``(n_slices, rows)``, plane row = slice, plane col = mask row.

The drag paints straight into that view (so every view shows it live) with the same disc brush as an axial stroke,
in the plane's own pixel units; the plane as it was is kept so that the whole drag becomes one undo entry made of
one cropped diff per axial slice it changed (a coronal change on slice ``s`` is a one-row diff, a sagittal one a
one-column diff).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.editing._brush import BBox
from core.editing._history import Region
from core.editing._stroke import Stroke

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
PLANES = (AXIAL, CORONAL, SAGITTAL)


def check_plane(plane: str, index, shape: tuple[int, int, int]) -> tuple[str, int]:
    """``(plane, index)`` validated against a ``(n_slices, rows, cols)`` shape; ValueError / IndexError else."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"plane index must be an int, got {index!r}")
    axis = PLANES.index(plane)
    index = int(index)
    if not 0 <= index < shape[axis]:
        raise IndexError(f"{plane} index {index} is out of range 0..{shape[axis] - 1}")
    return plane, index


def plane_view(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2-D view of ``volume`` ``(n_slices, rows, cols)`` in ``plane`` at ``index`` (shares memory)."""
    if plane == AXIAL:
        return volume[index]
    if plane == CORONAL:
        return volume[:, index, :]
    return volume[:, :, index]


def axial_regions(plane: str, index: int, box: BBox) -> list[Region]:
    """The axial :class:`Region` per slice covered by ``box`` ``(r0, r1, c0, c1)`` in plane coordinates."""
    r0, r1, c0, c1 = box
    if plane == AXIAL:
        return [Region(index, r0, r1, c0, c1)]
    if plane == CORONAL:
        return [Region(s, index, index + 1, c0, c1) for s in range(r0, r1)]
    return [Region(s, c0, c1, index, index + 1) for s in range(r0, r1)]


@dataclass
class PlaneStroke:
    """A drag in ``plane`` at ``index``; ``stroke`` paints into :func:`plane_view` and keeps its snapshot."""

    plane: str
    index: int
    stroke: Stroke

    @classmethod
    def start(cls, mask: np.ndarray, plane: str, index: int, erase: bool, radius: float) -> PlaneStroke:
        return cls(plane, index, Stroke(index, erase, radius, plane_view(mask, plane, index).copy()))

    @property
    def touched(self) -> bool:
        return self.stroke.touched

    @property
    def label(self) -> str:
        return f"{self.stroke.label} ({self.plane})"

    def touched_slices(self) -> set[int]:
        """Axial slices the drag has stamped so far (a superset of those it changed)."""
        if self.stroke.bbox is None:
            return set()
        if self.plane == AXIAL:
            return {self.index}
        r0, r1 = self.stroke.bbox[:2]
        return set(range(r0, r1))

    def stamp_to(self, mask: np.ndarray, row: float, col: float) -> list[Region]:
        """Stamp at plane position ``(row, col)`` (pixel-centred) and along the segment from the previous point;
        the axial regions stamped by this call (empty when nothing was)."""
        box: BBox | None = self.stroke.stamp_to(plane_view(mask, self.plane, self.index), row, col)
        return [] if box is None else axial_regions(self.plane, self.index, box)

    def restore(self, mask: np.ndarray) -> list[Region]:
        """Put the stamped box back as it was (cancel); the axial regions restored."""
        if self.stroke.bbox is None:
            return []
        r0, r1, c0, c1 = self.stroke.bbox
        plane_view(mask, self.plane, self.index)[r0:r1, c0:c1] = self.stroke.snapshot[r0:r1, c0:c1]
        return axial_regions(self.plane, self.index, self.stroke.bbox)

    def slice_changes(self, mask: np.ndarray):
        """``(slice, old, new, row_offset, col_offset)`` per axial slice under the stamped box: 2-D uint8 arrays
        (one row for coronal, one column for sagittal) placed at ``(row_offset, col_offset)`` on that slice."""
        if self.stroke.bbox is None:
            return
        r0, r1, c0, c1 = self.stroke.bbox
        snap = self.stroke.snapshot
        i = self.index
        if self.plane == AXIAL:
            yield i, snap[r0:r1, c0:c1], mask[i, r0:r1, c0:c1], r0, c0
            return
        for s in range(r0, r1):
            if self.plane == CORONAL:
                yield s, snap[s:s + 1, c0:c1], mask[s, i:i + 1, c0:c1], i, c0
            else:
                yield s, snap[s, c0:c1][:, None], mask[s, c0:c1, i:i + 1], c0, i

"""3-D clean-up of the working mask for :class:`core.editing.MaskEditor`: smooth, remove small islands, keep the
largest 3-D region. Each is one undo step over every slice it changed.

Masks are ``(n_slices, rows, cols)`` 0/1 arrays. Radii are in millimetres when the voxel spacing
``(slice, row, col)`` mm is known, else in pixels (one slice counting as one pixel). Connectivity is 26-connected
(face, edge and corner neighbours) in 3-D.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy import ndimage

from core.editing._history import Region

Spacing = Optional[tuple[float, float, float]]
_FULL = np.ones((3, 3, 3), dtype=bool)


def ellipsoid(radius: float, spacing: Spacing) -> np.ndarray:
    """A 3-D bool structuring element of ``radius`` mm (px without spacing) on the voxel grid: ``(2a+1, 2b+1,
    2c+1)`` with half-sizes ``radius / spacing`` per axis, at least one voxel in-plane."""
    radius = float(radius)
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"clean-up radius must be positive, got {radius!r}")
    sp = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    half = [radius / s for s in sp]
    n = [int(math.floor(h)) for h in half]
    n[1], n[2] = max(n[1], 1), max(n[2], 1)
    z, y, x = np.ogrid[-n[0]:n[0] + 1, -n[1]:n[1] + 1, -n[2]:n[2] + 1]
    hz = half[0] if half[0] > 0 else 1.0
    return (z / max(hz, 1e-9)) ** 2 + (y / half[1]) ** 2 + (x / half[2]) ** 2 <= 1.0 + 1e-9


def smoothed(mask: np.ndarray, radius: float, spacing: Spacing) -> np.ndarray:
    """Morphological closing then opening of ``mask`` with an ellipsoid of ``radius`` (bool array): fills notches
    and gaps narrower than the ball, then removes spurs thinner than it. Padded so the volume's edges do not
    erode."""
    ball = ellipsoid(radius, spacing)
    pad = [(s // 2, s // 2) for s in ball.shape]
    m = np.pad(mask != 0, pad)
    m = ndimage.binary_closing(m, structure=ball)
    m = ndimage.binary_opening(m, structure=ball)
    return m[tuple(slice(p[0], p[0] + n) for p, n in zip(pad, mask.shape))]


def without_small_islands(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without 3-D components smaller than ``min_voxels`` voxels (bool array)."""
    labels, count = ndimage.label(mask != 0, structure=_FULL)
    if count == 0:
        return mask != 0
    sizes = np.bincount(labels.ravel())
    keep = sizes >= int(min_voxels)
    keep[0] = False
    return keep[labels]


def largest_3d_region(mask: np.ndarray) -> Optional[np.ndarray]:
    """The largest 26-connected 3-D component (bool array); ``None`` with fewer than two components. Ties go to
    the component met first in C order."""
    labels, count = ndimage.label(mask != 0, structure=_FULL)
    if count <= 1:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


class CleanupMixin:
    """3-D clean-up tools for :class:`core.editing.MaskEditor` (uses ``_mask``, ``_finish_stroke``,
    ``_make_diff`` and ``_apply_new``)."""

    def smooth_mask(self, radius: float, spacing: Spacing = None) -> list[Region]:
        """Closing then opening with a ball of ``radius`` mm (px when ``spacing`` is ``None``), one undo step
        ("Smooth (r mm)")."""
        self._finish_stroke()
        unit = "px" if spacing is None else "mm"
        return self._replace_volume(smoothed(self._mask, radius, spacing), f"Smooth ({radius:g} {unit})")

    def remove_small_islands(self, min_voxels: int) -> list[Region]:
        """Delete every 3-D component under ``min_voxels`` voxels, one undo step ("Remove islands < N voxels")."""
        if int(min_voxels) < 1:
            raise ValueError(f"min_voxels must be >= 1, got {min_voxels!r}")
        self._finish_stroke()
        return self._replace_volume(without_small_islands(self._mask, int(min_voxels)),
                                    f"Remove islands < {int(min_voxels)} voxels")

    def keep_largest_3d_region(self) -> list[Region]:
        """Keep only the largest 26-connected 3-D component, one undo step ("Keep largest 3-D region")."""
        self._finish_stroke()
        largest = largest_3d_region(self._mask)
        if largest is None:
            return []
        return self._replace_volume(largest, "Keep largest 3-D region")

    def _replace_volume(self, new: np.ndarray, label: str) -> list[Region]:
        changed = np.flatnonzero((self._mask != new).reshape(new.shape[0], -1).any(axis=1))
        diffs = [d for i in changed.tolist() if (d := self._make_diff(i, self._mask[i], new[i], 0, 0))]
        return self._apply_new(label, diffs, auto_correct=True)

"""One brush drag in progress, for :class:`core.editing.MaskEditor`.

The stroke paints straight into the working slice (so views show it live) and remembers the slice as it was
before the drag, so that :class:`~core.editing.MaskEditor` can record the whole drag as one cropped undo entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.editing._brush import BBox, disc_footprint, line_points, quantise, stroke_step, union_bbox


@dataclass
class Stroke:
    """A drag on ``slice_index``: ``snapshot`` is that ``(rows, cols)`` uint8 slice before the drag, ``bbox`` the
    union of every stamp so far (``None`` until something was stamped)."""

    slice_index: int
    erase: bool
    radius: float
    snapshot: np.ndarray
    last: Optional[tuple[float, float]] = None
    bbox: Optional[BBox] = None

    @property
    def label(self) -> str:
        return "Eraser stroke" if self.erase else "Brush stroke"

    @property
    def touched(self) -> bool:
        return self.bbox is not None

    def stamp_to(self, slice2d: np.ndarray, row: float, col: float) -> Optional[BBox]:
        """Stamp at ``(row, col)`` and along the segment from the previous point into ``slice2d`` (in place).

        Stamps are at most ``radius/2`` apart (see :func:`~core.editing._brush.stroke_step`). Returns the clipped
        bounding box stamped by this call, or ``None``.
        """
        row, col = float(row), float(col)
        if not (math.isfinite(row) and math.isfinite(col)):
            raise ValueError(f"brush position must be finite, got ({row}, {col})")
        if self.last is None:
            points = np.array([(row, col)], dtype=np.float64)
        else:
            points = line_points(self.last, (row, col), stroke_step(self.radius))[1:]
        self.last = (row, col)
        shape2d = slice2d.shape
        bbox: Optional[BBox] = None
        previous = None
        for r, c in points.tolist():
            key = (quantise(r), quantise(c))
            if key == previous:  # the same quantised stamp again adds nothing
                continue
            previous = key
            hit = disc_footprint(shape2d, r, c, self.radius)
            if hit is None:
                continue
            box, paint, keep = hit
            sub = slice2d[box[0]:box[1], box[2]:box[3]]
            if self.erase:
                np.bitwise_and(sub, keep, out=sub)
            else:
                np.bitwise_or(sub, paint, out=sub)
            bbox = union_bbox(bbox, box)
        self.bbox = union_bbox(self.bbox, bbox)
        return bbox

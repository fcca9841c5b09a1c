"""Threshold-limited brush for :class:`core.editing.MaskEditor`: a drag that only changes pixels whose image
intensity lies within ``[low, high]`` (Hounsfield units for CT, the 0..255 PNG scale for Kaggle slices; the
volume's own units, :attr:`core.types.Volume.intensity`).

The limit is a ``(rows, cols)`` bool array of the slice being painted (:func:`intensity_limit`); a
:class:`LimitedStroke` paints as a plain :class:`~core.editing._stroke.Stroke` does, then puts every pixel outside
the limit back as it was before the drag, so painting and erasing both respect the range and the drag stays one
cropped undo step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.editing._brush import BBox
from core.editing._stroke import Stroke


def check_range(low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` as floats; ``ValueError`` when not finite or ``low > high``."""
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"intensity range must be finite with low <= high, got [{low}, {high}]")
    return low, high


def intensity_limit(image2d: np.ndarray, low: float, high: float) -> np.ndarray:
    """Bool ``(rows, cols)``: where ``low <= image2d <= high`` (``image2d`` in the volume's units)."""
    low, high = check_range(low, high)
    image2d = np.asarray(image2d)
    return (image2d >= low) & (image2d <= high)


def range_around(value: float, tolerance: float) -> tuple[float, float]:
    """The range ``value ± tolerance`` (the "pick under the cursor" rule); ``tolerance >= 0``."""
    tolerance = float(tolerance)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    return check_range(float(value) - tolerance, float(value) + tolerance)


@dataclass
class LimitedStroke(Stroke):
    """A :class:`Stroke` that changes only pixels where ``allowed`` (``(rows, cols)`` bool) is true."""

    allowed: Optional[np.ndarray] = None

    def stamp_to(self, slice2d: np.ndarray, row: float, col: float) -> Optional[BBox]:
        box = super().stamp_to(slice2d, row, col)
        if box is not None and self.allowed is not None:
            r0, r1, c0, c1 = box
            outside = ~self.allowed[r0:r1, c0:c1]
            sub = slice2d[r0:r1, c0:c1]
            sub[outside] = self.snapshot[r0:r1, c0:c1][outside]
        return box


class ThresholdMixin:
    """:meth:`begin_limited_stroke` for :class:`core.editing.MaskEditor` (uses ``begin_stroke`` and ``_stroke``)."""

    def begin_limited_stroke(self, slice_index: int, *, erase: bool, radius: float,
                             allowed: Optional[np.ndarray]) -> None:
        """Like ``begin_stroke``, but the drag only changes pixels where ``allowed`` (``(rows, cols)`` bool, e.g.
        :func:`intensity_limit` of the slice's image) is true; ``None`` is a plain stroke. Continue with
        ``stroke_to`` / ``end_stroke`` as usual (one undo step)."""
        self.begin_stroke(slice_index, erase=erase, radius=radius)
        if allowed is None:
            return
        allowed = np.asarray(allowed, dtype=bool)
        s = self._stroke
        if allowed.shape != s.snapshot.shape:
            self._stroke = None
            raise ValueError(f"intensity limit shape {allowed.shape} differs from the slice's {s.snapshot.shape}")
        fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
        self._stroke = LimitedStroke(**fields, allowed=allowed)

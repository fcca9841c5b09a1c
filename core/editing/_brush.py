"""Brush geometry for :mod:`core.editing`: disc stamps with sub-pixel centres and stroke interpolation.

Coordinates are ``(row, col)`` in pixel units of one slice, with pixel ``(r, c)`` **centred** at ``(r, c)``
(so it covers ``[r - 0.5, r + 0.5)``). A view whose item coordinates put pixel ``r`` on ``[r, r + 1)`` (pyqtgraph's
``ImageItem``) subtracts 0.5 before calling in.

A disc of radius ``radius`` (pixels, ``>= 0.5``) centred at ``(row, col)`` covers every pixel whose centre lies
within ``radius`` of ``(row, col)``, plus always the pixel nearest the centre (so a thin brush never stamps
nothing). Centres are quantised to 1/:data:`SUBPIXEL` pixel; kernels are cached per ``(radius, sub-pixel offset)``
so a stamp only touches its own bounding box.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

#: Sub-pixel positions per pixel used to quantise stamp centres (4 -> quarter-pixel precision).
SUBPIXEL = 4
#: Smallest brush radius in pixels (a one-pixel brush).
MIN_RADIUS = 0.5
#: Largest brush radius in pixels (a sanity bound; kernels are (2r+3)^2 bytes).
MAX_RADIUS = 512.0

_KERNELS: dict[tuple[float, int, int], tuple[int, int, np.ndarray, np.ndarray]] = {}
_KERNEL_CACHE_LIMIT = 1024

BBox = tuple[int, int, int, int]


def check_radius(radius: float) -> float:
    """Return ``radius`` as float, raising ``ValueError`` outside ``[MIN_RADIUS, MAX_RADIUS]`` or when not finite."""
    r = float(radius)
    if not math.isfinite(r) or r < MIN_RADIUS or r > MAX_RADIUS:
        raise ValueError(f"brush radius must be between {MIN_RADIUS} and {MAX_RADIUS} pixels, got {radius!r}")
    return r


def _disc_kernel(radius: float, sub_r: int, sub_c: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Kernel for a disc whose centre is ``(sub_r, sub_c) / SUBPIXEL`` pixels past an integer pixel.

    Returns ``(dr0, dc0, paint, keep)``: the kernel's top-left offset from that integer pixel, a uint8 0/1 array
    of covered pixels (cropped to its bounding box) and its complement (for erasing with ``&=``).
    """
    key = (radius, sub_r, sub_c)
    hit = _KERNELS.get(key)
    if hit is not None:
        return hit
    fr, fc = sub_r / SUBPIXEL, sub_c / SUBPIXEL
    half = int(math.ceil(radius)) + 1
    d = np.arange(-half, half + 1, dtype=np.float64)
    dist2 = (d[:, None] - fr) ** 2 + (d[None, :] - fc) ** 2
    covered = dist2 <= radius * radius + 1e-9
    covered[half + int(round(fr)), half + int(round(fc))] = True  # the nearest pixel, always
    rows = np.flatnonzero(covered.any(axis=1))
    cols = np.flatnonzero(covered.any(axis=0))
    crop = covered[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    paint = np.ascontiguousarray(crop, dtype=np.uint8)
    keep = np.ascontiguousarray(1 - paint)
    paint.flags.writeable = False
    keep.flags.writeable = False
    entry = (int(rows[0]) - half, int(cols[0]) - half, paint, keep)
    if len(_KERNELS) >= _KERNEL_CACHE_LIMIT:
        _KERNELS.clear()
    _KERNELS[key] = entry
    return entry


def quantise(x: float) -> tuple[int, int]:
    """Split a coordinate into an integer pixel and a sub-pixel step in ``[0, SUBPIXEL)``."""
    q = int(math.floor(x * SUBPIXEL + 0.5))
    return q // SUBPIXEL, q % SUBPIXEL


def disc_footprint(shape: tuple[int, int], row: float, col: float, radius: float
                   ) -> Optional[tuple[BBox, np.ndarray, np.ndarray]]:
    """The part of a disc stamp that falls inside a ``shape`` slice.

    Returns ``((r0, r1, c0, c1), paint, keep)`` with the half-open clipped bounding box and the uint8 kernels
    cropped to it (read-only), or ``None`` when the disc lies wholly outside the slice.
    """
    ir, sr = quantise(row)
    ic, sc = quantise(col)
    dr0, dc0, paint, keep = _disc_kernel(radius, sr, sc)
    kh, kw = paint.shape
    r0, c0 = ir + dr0, ic + dc0
    r1, c1 = r0 + kh, c0 + kw
    rows, cols = shape
    cr0, cr1 = max(r0, 0), min(r1, rows)
    cc0, cc1 = max(c0, 0), min(c1, cols)
    if cr0 >= cr1 or cc0 >= cc1:
        return None
    ks = (slice(cr0 - r0, cr1 - r0), slice(cc0 - c0, cc1 - c0))
    return (cr0, cr1, cc0, cc1), paint[ks], keep[ks]


def line_points(p0: tuple[float, float], p1: tuple[float, float], step: float) -> np.ndarray:
    """Evenly spaced points from ``p0`` to ``p1`` (both included), at most ``step`` pixels apart.

    Returns a ``(n, 2)`` float64 array of ``(row, col)``; ``n >= 1`` (a single point when ``p0 == p1``).
    """
    if not step > 0:
        raise ValueError(f"line_points step must be positive, got {step!r}")
    a = np.asarray(p0, dtype=np.float64)
    b = np.asarray(p1, dtype=np.float64)
    dist = float(np.hypot(*(b - a)))
    n = int(math.ceil(dist / step - 1e-9)) if dist > 0 else 0
    if n == 0:
        return a[None, :].copy()
    t = np.arange(n + 1, dtype=np.float64)[:, None] / n
    return a + (b - a) * t


def stroke_step(radius: float) -> float:
    """Spacing between interpolated stamps: a quarter of the radius (<= radius/2), at least 0.25 px."""
    return max(radius / 4.0, 0.25)


def union_bbox(a: Optional[BBox], b: Optional[BBox]) -> Optional[BBox]:
    """Smallest half-open box holding both (``None`` stands for empty)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def diff_bbox(old: np.ndarray, new: np.ndarray) -> Optional[BBox]:
    """Half-open bounding box ``(r0, r1, c0, c1)`` of the pixels where two equal-shape 2-D arrays differ."""
    changed = old != new
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(changed[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

"""QC flags: simple anatomy rules that point at masks likely to need a correction.

Every flag has a short name (``FLAGS``) and a one-line explanation. Rules that compare neighbouring slices apply
only where the slices are neighbours in the body (:func:`core.postprocess.slices_adjacent`); on a random subset of
slices they would compare slices centimetres apart.

Per slice:

* ``multiple_regions`` — more than one separate region (the heart is one object on an axial slice; a second one
  is usually the aorta, a vessel or the liver dome).
* ``touches_border`` — the mask touches the image border (a heart never reaches the edge of a chest CT).
* ``area_jump`` — the area differs from a neighbouring slice by more than :data:`AREA_JUMP` of the scan's largest
  slice area. On the bundled sample's reference masks (1.5 mm slices) the largest change is 0.14 of it; 0.3
  leaves room for 3 mm slices. (Relative to the two slices' own areas the rule would fire at every apex and
  base, where areas are small: 520 -> 88 px there is normal.)
* ``isolated`` — heart on this slice but on none of the :data:`ISOLATION` slices on either side, while the scan
  has heart elsewhere.
* ``cut_off`` — the first or last slice with heart has more than :data:`CUT_OFF` of the largest slice's area: the
  mask stops abruptly (apex or base missed), or the scan itself ends inside the heart.

Per scan:

* ``volume_implausible`` — with voxel spacing and neighbouring slices: a total heart volume outside
  :data:`VOLUME_ML` (whole heart with the roots of the great vessels, adults).
* ``no_heart`` — no slice has a mask.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

FLAGS = {
    "multiple_regions": "more than one separate region on this slice",
    "touches_border": "the mask touches the image border",
    "area_jump": "the area changes abruptly from a neighbouring slice",
    "isolated": "heart on this slice but not on the slices around it",
    "cut_off": "first or last slice with heart has a large area: the mask may stop too early",
    "volume_implausible": "total heart volume outside the plausible range",
    "no_heart": "no slice has a heart mask",
}
AREA_JUMP = 0.3
ISOLATION = 2
CUT_OFF = 0.5
VOLUME_ML = (150.0, 2000.0)


def _regions(mask: np.ndarray) -> int:
    from scipy import ndimage

    return int(ndimage.label(mask)[1])


def slice_flags(masks: np.ndarray, *, adjacent: bool = True) -> list[list[str]]:
    """Flag names per slice of ``masks`` ``(n, rows, cols)`` 0/1."""
    masks = np.asarray(masks)
    n = masks.shape[0]
    flat = masks.reshape(n, -1)
    area = np.count_nonzero(flat, axis=1)
    has = area > 0
    largest = int(area.max()) if n else 0
    heart = np.flatnonzero(has)
    out: list[list[str]] = [[] for _ in range(n)]
    for i in range(n):
        if not has[i]:
            continue
        m = masks[i]
        flags = []
        if _regions(m) > 1:
            flags.append("multiple_regions")
        if m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any():
            flags.append("touches_border")
        if adjacent and n > 1:
            for j in (i - 1, i + 1):
                if 0 <= j < n and abs(int(area[i]) - int(area[j])) > AREA_JUMP * largest:
                    flags.append("area_jump")
                    break
            lo, hi = max(0, i - ISOLATION), min(n, i + ISOLATION + 1)
            if heart.size > 1 and not has[lo:i].any() and not has[i + 1:hi].any():
                flags.append("isolated")
            if heart.size > 1 and i in (heart[0], heart[-1]) and area[i] > CUT_OFF * largest:
                flags.append("cut_off")
        out[i] = flags
    return out


def scan_flags(masks: np.ndarray, *, adjacent: bool = True, spacing: Optional[tuple] = None) -> list[str]:
    """Flag names for the whole scan."""
    masks = np.asarray(masks)
    if not masks.any():
        return ["no_heart"]
    flags = []
    if adjacent and spacing is not None:
        ml = float(np.count_nonzero(masks)) * float(np.prod(spacing)) / 1000.0
        if not VOLUME_ML[0] <= ml <= VOLUME_ML[1]:
            flags.append("volume_implausible")
    return flags


def describe(flags) -> str:
    """``"name: explanation; ..."`` for a list of flag names."""
    return "; ".join(f"{f}: {FLAGS.get(f, f)}" for f in flags)


__all__ = ["FLAGS", "slice_flags", "scan_flags", "describe"]

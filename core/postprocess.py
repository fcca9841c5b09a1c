"""Turning the U-Net's probabilities into heart masks: threshold, then clean-up that knows which slices touch.

The heart is one object, so the largest connected region is kept. Whether that region is taken in 3-D depends on
the stack: only slices that are real neighbours may be joined (:func:`slices_adjacent`).

* A contiguous stack (DICOM or NIfTI with regular spacing; Kaggle / PNG slices numbered without gaps) keeps the
  largest **3-D** region: a false mask on an isolated slice (the aorta above the heart, the stomach below) is
  dropped, a heart that is one object across slices is kept.
* A stack whose slices are not neighbours (Kaggle slices numbered with gaps, as in the public subsets; PNG names
  without numbers, so the order is unknown; irregular DICOM spacing) keeps the largest **2-D** region of each
  slice instead: a 3-D rule there would join, or drop, slices that are centimetres apart.

:data:`DEFAULT_POSTPROCESS` is the bundled model's rule, chosen on validation patients only
(``scripts/cross_validate.py``; figures in ``resources/model/MODEL_CARD.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from core.preprocess import THRESHOLD
from core.preprocess import threshold as binarise
from core.types import Volume


@dataclass(frozen=True)
class PostprocessOptions:
    """Threshold and clean-up of one model's masks.

    threshold: probability at or above which a pixel is heart.
    keep_largest: keep only the largest connected region (3-D where ``slices_adjacent``, per slice otherwise).
    slices_adjacent: whether neighbouring array slices are neighbours in the body (set by
        :func:`postprocess_for_volume`; True for a plain stack).
    min_region_px: drop 2-D regions smaller than this many pixels on each slice (0 = off).
    min_slice_fraction: a slice keeps its mask only if the predicted area is at least this fraction of the
        slice (0 = off) — suppresses specks on slices without heart.
    """

    threshold: float = THRESHOLD
    keep_largest: bool = False
    slices_adjacent: bool = True
    min_region_px: int = 0
    min_slice_fraction: float = 0.0

    @property
    def active(self) -> bool:
        return self.keep_largest or self.min_region_px > 0 or self.min_slice_fraction > 0


#: The bundled model's rule (chosen on validation patients, see resources/model/MODEL_CARD.md).
DEFAULT_POSTPROCESS = PostprocessOptions(threshold=0.7, keep_largest=True, min_slice_fraction=0.03)
#: A plain 0.5 threshold.
NO_POSTPROCESS = PostprocessOptions()

_NUMBER = re.compile(r"(\d+)$")


def slice_numbers(names) -> Optional[list[int]]:
    """The trailing number of every slice name (``1-057`` -> 57), or None if any name has none."""
    out = []
    for name in names:
        m = _NUMBER.search(str(name))
        if m is None:
            return None
        out.append(int(m.group(1)))
    return out


def slices_adjacent(volume: Volume) -> bool:
    """Whether consecutive slices of ``volume`` are neighbours in the body.

    DICOM / NIfTI: yes, unless the DICOM positions are irregularly spaced. Kaggle / PNG folders (no positions):
    yes only if the slice names end in numbers that run without a gap (``1-001, 1-002 ...`` up or down)."""
    if volume.n_slices < 2:
        return True
    if volume.kind in ("dicom", "nifti"):
        return not volume.metadata.get("irregular_spacing", False)
    numbers = slice_numbers(volume.slice_names)
    if numbers is None:
        return False
    steps = np.diff(np.asarray(numbers))
    return bool(np.all(steps == 1) or np.all(steps == -1))


def threshold_of(options: Optional[PostprocessOptions]) -> float:
    """The threshold a rule uses (:data:`core.preprocess.THRESHOLD` without one)."""
    return THRESHOLD if options is None else options.threshold


def postprocess_for_volume(volume: Volume, options: Optional[PostprocessOptions]) -> Optional[PostprocessOptions]:
    """``options`` with ``slices_adjacent`` set from ``volume`` (see :func:`slices_adjacent`)."""
    if options is None:
        return None
    return replace(options, slices_adjacent=slices_adjacent(volume))


def _keep_largest_2d(mask: np.ndarray) -> None:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask[labels != int(np.argmax(sizes))] = 0


def postprocess_masks(masks: np.ndarray, postprocess: Optional[PostprocessOptions] = None) -> np.ndarray:
    """Apply :class:`PostprocessOptions` (not the threshold) to binary masks ``(n, rows, cols)`` uint8 0/1
    (modified in place where possible; the result is returned)."""
    if postprocess is None or not postprocess.active:
        return masks
    from scipy import ndimage

    n, rows, cols = masks.shape
    if postprocess.min_slice_fraction > 0:
        area = masks.reshape(n, -1).sum(axis=1)
        masks[area < postprocess.min_slice_fraction * rows * cols] = 0
    if postprocess.min_region_px > 0:
        for i in range(n):
            if masks[i].any():
                labels, count = ndimage.label(masks[i])
                sizes = np.bincount(labels.ravel())
                small = np.flatnonzero(sizes < postprocess.min_region_px)
                small = small[small > 0]
                if small.size:
                    masks[i][np.isin(labels, small)] = 0
    if postprocess.keep_largest and not postprocess.slices_adjacent:
        for i in range(n):
            if masks[i].any():
                _keep_largest_2d(masks[i])
    elif postprocess.keep_largest and masks.any():
        # label only the bounding box of the foreground (same result, far less work on a 512-slice scan)
        box = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in
                    (np.flatnonzero(masks.any(axis=(1, 2))), np.flatnonzero(masks.any(axis=(0, 2))),
                     np.flatnonzero(masks.any(axis=(0, 1)))))
        labels, count = ndimage.label(masks[box])
        if count > 1:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            keep = labels == int(np.argmax(sizes))
            masks = np.zeros_like(masks)
            masks[box] = keep
    return masks


__all__ = ["PostprocessOptions", "DEFAULT_POSTPROCESS", "NO_POSTPROCESS", "slices_adjacent", "slice_numbers",
           "threshold_of", "postprocess_for_volume", "postprocess_masks"]


def probabilities_to_masks(probs: np.ndarray, threshold: Optional[float] = None,
                           postprocess: Optional[PostprocessOptions] = None) -> np.ndarray:
    """``(n, rows, cols)`` probabilities -> uint8 0/1 masks, thresholded (>= ``threshold``, by default the
    post-processing's own, else 0.5) then post-processed. Give ``postprocess_for_volume(volume, options)`` so the
    clean-up knows whether the slices are neighbours."""
    if threshold is None:
        threshold = threshold_of(postprocess)
    return postprocess_masks(binarise(probs, threshold), postprocess)

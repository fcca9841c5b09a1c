"""Fill between slices: signed-distance shape interpolation for :class:`core.editing.MaskEditor`.

Key slices are 2-D masks ``(rows, cols)`` uint8 0/1 of a ``(n_slices, rows, cols)`` volume. Between two key
slices ``a < b`` each slice ``k`` gets the zero level set of the linearly blended signed distance maps
``(1 - t) * sd_a + t * sd_b`` with ``t = (k - a) / (b - a)`` (distances in pixels, negative inside; computed with
``scipy.ndimage.distance_transform_edt``). A shape thus morphs smoothly from one key to the next; a key whose
neighbour key is empty is not interpolated towards nothing (gaps only lie *between* non-empty keys).

The filled slices stay ``"not_reviewed"`` (review states are a stored format, see :data:`core.types.REVIEW_STATES`)
and are listed by :attr:`InterpolateMixin.interpolated_slices` until they are edited or reviewed.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
from scipy import ndimage

from core.editing._history import Region


def signed_distance(mask2d: np.ndarray) -> np.ndarray:
    """Signed distance map of a ``(rows, cols)`` mask in pixels, float32: negative inside, positive outside.

    Pixel centres inside get ``-(distance to the nearest background pixel) + 0.5``, outside
    ``distance to the nearest mask pixel - 0.5``, so the zero level lies on the pixel boundary and
    ``signed_distance(m) < 0`` gives ``m`` back. An empty mask is ``+inf`` everywhere.
    """
    inside = mask2d != 0
    if not inside.any():
        return np.full(inside.shape, np.inf, dtype=np.float32)
    if inside.all():
        return np.full(inside.shape, -np.inf, dtype=np.float32)
    outside_d = ndimage.distance_transform_edt(~inside)
    inside_d = ndimage.distance_transform_edt(inside)
    return np.where(inside, 0.5 - inside_d, outside_d - 0.5).astype(np.float32)


def interpolate_pair(key_a: np.ndarray, key_b: np.ndarray, n_between: int) -> np.ndarray:
    """The ``n_between`` slices between two non-empty key masks, ``(n_between, rows, cols)`` uint8 0/1."""
    sd_a, sd_b = signed_distance(key_a), signed_distance(key_b)
    out = np.zeros((n_between,) + key_a.shape, dtype=np.uint8)
    for j in range(n_between):
        t = (j + 1) / (n_between + 1)
        out[j] = ((1.0 - t) * sd_a + t * sd_b) < 0
    return out


def key_slices(mask: np.ndarray, first: int = 0, last: Optional[int] = None) -> list[int]:
    """Indices of the non-empty slices of a ``(n, rows, cols)`` mask within ``[first, last]`` (inclusive)."""
    last = mask.shape[0] - 1 if last is None else last
    nonempty = mask[first:last + 1].reshape(last + 1 - first, -1).any(axis=1)
    return [first + int(i) for i in np.flatnonzero(nonempty)]


def interpolate_gaps(mask: np.ndarray, keys: Iterable[int]) -> dict[int, np.ndarray]:
    """Fill the slices between consecutive ``keys`` (sorted, distinct slice indices of ``mask``, a
    ``(n, rows, cols)`` 0/1 array): ``{slice: (rows, cols) uint8 mask}`` for every slice strictly between two
    keys. Pairs whose keys are adjacent, or either of which is empty, give nothing."""
    keys = sorted(set(int(k) for k in keys))
    filled: dict[int, np.ndarray] = {}
    for a, b in zip(keys, keys[1:]):
        if b - a < 2 or not mask[a].any() or not mask[b].any():
            continue
        for j, m in enumerate(interpolate_pair(mask[a], mask[b], b - a - 1)):
            filled[a + 1 + j] = m
    return filled


class InterpolateMixin:
    """"Fill between slices" for :class:`core.editing.MaskEditor` (uses its ``_mask``, ``_check_index``,
    ``_finish_stroke``, ``_make_diff``, ``_apply_new``, ``_slice_rev`` and ``_review``)."""

    @property
    def _interpolated_rev(self) -> dict[int, int]:
        # slice -> content revision the interpolation wrote (created on first use; the editor's own __init__
        # stays untouched)
        d = self.__dict__.get("_interp_rev")
        if d is None:
            d = self.__dict__["_interp_rev"] = {}
        return d

    def interpolate_slices(self, first: int = 0, last: Optional[int] = None, *,
                           keys: Optional[Iterable[int]] = None) -> list[Region]:
        """Fill the slices between key slices by shape interpolation, as one undo step
        ("Fill between slices (N slices)").

        ``keys``: the key slices (default: every non-empty slice in ``[first, last]``, so the empty gaps between
        them are filled; with explicit keys every non-key slice between two keys is replaced). Filled slices are
        set to ``"not_reviewed"`` within the same step and reported by :attr:`interpolated_slices`. Returns the
        changed regions (empty, and no step, when there is no gap to fill).
        """
        first = self._check_index(first)
        last = self.n_slices - 1 if last is None else self._check_index(last)
        if last < first:
            raise ValueError(f"interpolate_slices: last slice {last} is before first {first}")
        self._finish_stroke()
        key_list = key_slices(self._mask, first, last) if keys is None else [self._check_index(k) for k in keys]
        filled = interpolate_gaps(self._mask, key_list)
        diffs = [d for i, m in sorted(filled.items()) if (d := self._make_diff(i, self._mask[i], m, 0, 0))]
        if not diffs:
            return []
        review = {d.slice_index: "not_reviewed" for d in diffs}
        regions = self._apply_new(f"Fill between slices ({len(diffs)} slices)", diffs, auto_correct=False,
                                  review=review)
        for d in diffs:
            self._interpolated_rev[d.slice_index] = d.new_revision
        return regions

    @property
    def interpolated_slices(self) -> list[int]:
        """Slices filled by :meth:`interpolate_slices` that still hold exactly what it wrote and are still
        ``"not_reviewed"`` (undo, a later edit or a review state takes a slice off this list)."""
        return sorted(i for i, rev in self._interpolated_rev.items()
                      if int(self._slice_rev[i]) == rev and self._review[i] == "not_reviewed")

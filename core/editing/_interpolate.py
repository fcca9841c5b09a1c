"""Fill between slices: signed-distance shape interpolation for :class:`core.editing.MaskEditor`.

Key slices are 2-D masks ``(rows, cols)`` uint8 0/1 of a ``(n_slices, rows, cols)`` volume. Between two key
slices ``a < b`` each slice ``k`` gets the zero level set of the linearly blended signed distance maps
``(1 - t) * sd_a + t * sd_b`` with ``t = (k - a) / (b - a)`` (distances in pixels, negative inside; computed with
``scipy.ndimage.distance_transform_edt``). A shape thus morphs smoothly from one key to the next; a key whose
neighbour key is empty is not interpolated towards nothing (gaps only lie *between* non-empty keys).

The filled slices stay ``"not_reviewed"`` (review states are a stored format, see :data:`core.types.REVIEW_STATES`)
and are listed by :attr:`InterpolateMixin.interpolated_slices` until they are edited or reviewed.

Along the other two axes (:meth:`InterpolateMixin.interpolate_planes`) the key "slices" are coronal planes
``mask[:, r, :]`` ``(n_slices, cols)`` or sagittal planes ``mask[:, :, c]`` ``(n_slices, rows)`` (e.g. the user
draws the heart on a few sagittal slices and fills between them). Distances are then in mm when the voxel spacing is
known (a plane's rows are axial slices, often thicker than a pixel), in pixels otherwise. The result is stored as
one cropped diff per *axial* slice it changes, and every such slice is marked ``"corrected"`` (unless
``"flagged"``), as a brush stroke in a plane is: an axial slice there is only partly filled, so it is not
"interpolated" as a whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from core.editing._history import Region


def signed_distance(mask2d: np.ndarray, sampling: tuple[float, float] | None = None) -> np.ndarray:
    """Signed distance map of a ``(rows, cols)`` mask, float32: negative inside, positive outside; in pixels, or
    in the units of ``sampling`` (the ``(row, col)`` pixel size, e.g. mm) when given.

    Pixel centres inside get ``-(distance to the nearest background pixel) + h``, outside
    ``distance to the nearest mask pixel - h`` with ``h`` half the smallest pixel size (0.5 px), so the zero level
    lies between the pixels and ``signed_distance(m) < 0`` gives ``m`` back. An empty mask is ``+inf`` everywhere.
    """
    inside = mask2d != 0
    if not inside.any():
        return np.full(inside.shape, np.inf, dtype=np.float32)
    if inside.all():
        return np.full(inside.shape, -np.inf, dtype=np.float32)
    half = 0.5 if sampling is None else 0.5 * float(min(sampling))
    outside_d = ndimage.distance_transform_edt(~inside, sampling=sampling)
    inside_d = ndimage.distance_transform_edt(inside, sampling=sampling)
    return np.where(inside, half - inside_d, outside_d - half).astype(np.float32)


def interpolate_pair(key_a: np.ndarray, key_b: np.ndarray, n_between: int,
                     sampling: tuple[float, float] | None = None) -> np.ndarray:
    """The ``n_between`` slices between two non-empty key masks, ``(n_between, rows, cols)`` uint8 0/1
    (``sampling``: the keys' ``(row, col)`` pixel size for :func:`signed_distance`; None: pixels)."""
    sd_a, sd_b = signed_distance(key_a, sampling), signed_distance(key_b, sampling)
    out = np.zeros((n_between,) + key_a.shape, dtype=np.uint8)
    for j in range(n_between):
        t = (j + 1) / (n_between + 1)
        out[j] = ((1.0 - t) * sd_a + t * sd_b) < 0
    return out


def key_slices(mask: np.ndarray, first: int = 0, last: int | None = None) -> list[int]:
    """Indices of the non-empty slices of a ``(n, rows, cols)`` mask within ``[first, last]`` (inclusive)."""
    last = mask.shape[0] - 1 if last is None else last
    nonempty = mask[first:last + 1].reshape(last + 1 - first, -1).any(axis=1)
    return [first + int(i) for i in np.flatnonzero(nonempty)]


def interpolate_gaps(mask: np.ndarray, keys: Iterable[int],
                     sampling: tuple[float, float] | None = None) -> dict[int, np.ndarray]:
    """Fill the slices between consecutive ``keys`` (sorted, distinct slice indices of ``mask``, a
    ``(n, rows, cols)`` 0/1 array, or any view of that shape): ``{slice: (rows, cols) uint8 mask}`` for every
    slice strictly between two keys. Pairs whose keys are adjacent, or either of which is empty, give nothing.
    ``sampling``: the ``(row, col)`` pixel size of a slice (None: pixels)."""
    keys = sorted({int(k) for k in keys})
    filled: dict[int, np.ndarray] = {}
    for a, b in itertools.pairwise(keys):
        if b - a < 2 or not mask[a].any() or not mask[b].any():
            continue
        for j, m in enumerate(interpolate_pair(mask[a], mask[b], b - a - 1, sampling)):
            filled[a + 1 + j] = m
    return filled


#: the volume axis each plane's slices run along, and the two volume axes of its 2-D planes (see
#: :mod:`core.editing._plane_stroke`)
PLANE_AXES = {"axial": (0, (1, 2)), "coronal": (1, (0, 2)), "sagittal": (2, (0, 1))}


def plane_stack(mask: np.ndarray, plane: str) -> np.ndarray:
    """``mask`` ``(n_slices, rows, cols)`` as a stack of ``plane``'s 2-D planes (a view, no copy): axial
    ``(n_slices, rows, cols)``, coronal ``(rows, n_slices, cols)``, sagittal ``(cols, n_slices, rows)``."""
    return np.moveaxis(mask, PLANE_AXES[plane][0], 0)


def nonempty_planes(mask: np.ndarray, plane: str, first: int = 0, last: int | None = None) -> list[int]:
    """Indices of ``plane``'s planes of ``mask`` within ``[first, last]`` (inclusive) that hold any voxel."""
    axis, others = PLANE_AXES[plane]
    last = mask.shape[axis] - 1 if last is None else last
    nonempty = np.asarray(mask != 0).any(axis=others)
    return [int(i) for i in np.flatnonzero(nonempty[first:last + 1]) + first]


def plane_sampling(spacing: tuple[float, float, float] | None, plane: str) -> tuple[float, float] | None:
    """The ``(row, col)`` pixel size in mm of ``plane``'s 2-D planes from ``spacing`` ``(slice, row, col)`` mm;
    None when the spacing is unknown (distances in pixels)."""
    if spacing is None:
        return None
    sp = tuple(float(v) for v in spacing)
    if len(sp) != 3 or min(sp) <= 0 or not all(np.isfinite(sp)):
        raise ValueError(f"voxel spacing must be three positive sizes in mm, got {spacing!r}")
    a, b = PLANE_AXES[plane][1]
    return sp[a], sp[b]


class InterpolateMixin:
    """"Fill between slices" for :class:`core.editing.MaskEditor` (uses its ``_mask``, ``_check_index``,
    ``_finish_stroke``, ``_make_diff``, ``_apply_new``, ``_slice_rev`` and ``_review``)."""

    def interpolate_planes(self, plane: str, first: int = 0, last: int | None = None, *,
                           keys: Iterable[int] | None = None,
                           spacing: tuple[float, float, float] | None = None) -> list[Region]:
        """Fill between key slices of ``plane`` (``"axial"``, ``"coronal"``, ``"sagittal"``) as one undo step
        ("Fill between sagittal slices (N slices)").

        ``first`` / ``last`` / ``keys`` are indices along the plane's axis (slices, rows or columns of the volume),
        with the meaning they have in :meth:`interpolate_slices` (which ``"axial"`` is). ``spacing``: the voxel
        size ``(slice, row, col)`` in mm, so that shapes morph by distances in mm (None: pixels; axial slices
        always use pixels). Each axial slice changed is one cropped diff and is marked ``"corrected"`` (unless
        ``"flagged"``). Returns the changed axial regions (empty, and no step, when there is no gap to fill).
        """
        if plane not in PLANE_AXES:
            raise ValueError(f"plane must be one of {tuple(PLANE_AXES)}, got {plane!r}")
        if plane == "axial":
            return self.interpolate_slices(first, last, keys=keys)
        axis = PLANE_AXES[plane][0]
        size = self._mask.shape[axis]

        def index(i, what: str) -> int:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"{plane} {what} must be an int, got {i!r}")
            if not 0 <= int(i) < size:
                raise IndexError(f"{plane} {what} {int(i)} is out of range 0..{size - 1}")
            return int(i)

        first = index(first, "index")
        last = size - 1 if last is None else index(last, "index")
        if last < first:
            raise ValueError(f"interpolate_planes: last {plane} slice {last} is before first {first}")
        sampling = plane_sampling(spacing, plane)
        self._finish_stroke()
        key_list = nonempty_planes(self._mask, plane, first, last) if keys is None \
            else [index(k, "key") for k in keys]
        filled = interpolate_gaps(plane_stack(self._mask, plane), key_list, sampling)
        if not filled:
            return []
        lo, hi = min(filled), max(filled) + 1
        # the new content of the slab of planes lo..hi-1, axial slice by axial slice
        slab = self._mask[:, lo:hi, :] if plane == "coronal" else self._mask[:, :, lo:hi]
        new = slab.copy()
        stack = plane_stack(new, plane)
        for i, m in filled.items():
            stack[i - lo] = m
        r_off, c_off = (lo, 0) if plane == "coronal" else (0, lo)
        diffs = [d for s in range(self.n_slices) if (d := self._make_diff(s, slab[s], new[s], r_off, c_off))]
        if not diffs:
            return []
        n = sum(1 for i, m in filled.items() if not np.array_equal(plane_stack(self._mask, plane)[i], m))
        return self._apply_new(f"Fill between {plane} slices ({n} slices)", diffs, auto_correct=True)

    @property
    def _interpolated_rev(self) -> dict[int, int]:
        # slice -> content revision the interpolation wrote (created on first use; the editor's own __init__
        # stays untouched)
        d = self.__dict__.get("_interp_rev")
        if d is None:
            d = self.__dict__["_interp_rev"] = {}
        return d

    def interpolate_slices(self, first: int = 0, last: int | None = None, *,
                           keys: Iterable[int] | None = None) -> list[Region]:
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

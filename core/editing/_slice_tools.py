"""The slice tools of :class:`core.editing.MaskEditor` (accept AI, clear, fill holes, keep largest, copy).

Each tool is one undo step with a 1-based label, built on the editor's private diff / record helpers; they live
here only to keep ``core/editing.py`` small. Use them through a ``MaskEditor``.
"""

from __future__ import annotations

from typing import Iterable, Union

import numpy as np

from core.editing._history import Region
from core.editing._review import check_state
from core.editing._tools import filled_holes, largest_region, slice_batch


class SliceToolsMixin:
    """Whole-slice edits for :class:`core.editing.MaskEditor` (expects its ``_mask``, ``_shape``,
    ``_check_index``, ``_finish_stroke``, ``_make_diff`` and ``_apply_new``)."""

    def set_slices(self, indices: Union[int, Iterable[int], None], masks: np.ndarray, label: str, *,
                   review_state: Union[str, dict[int, str], None] = None) -> list[Region]:
        """Replace whole slices in one undo step labelled ``label`` (e.g. "Accept AI mask (slice 12)").

        ``indices``: one slice, a sequence of distinct slices, or ``None`` for all. ``masks``: ``(k, rows, cols)``
        for ``k`` indices (``(rows, cols)`` for a single int); any dtype, nonzero means 1 (threshold
        probabilities before calling). ``review_state``, if given, is set on every listed slice as part of the
        step (a dict ``{slice: state}`` sets only those slices). Returns the changed region of each changed
        slice; no entry when nothing changed.
        """
        idx, masks = slice_batch(indices, masks, self.n_slices)
        idx = [self._check_index(i) for i in idx]
        if len(set(idx)) != len(idx):
            raise ValueError("set_slices: slice indices must be distinct")
        if masks.shape != (len(idx),) + self._shape[1:]:
            raise ValueError(f"set_slices: masks shape {masks.shape} does not match "
                             f"{(len(idx),) + self._shape[1:]} ({len(idx)} slices)")
        if isinstance(review_state, dict):
            review_state = {self._check_index(i): check_state(v) for i, v in review_state.items()}
        elif review_state is not None:
            check_state(review_state)
        self._finish_stroke()
        diffs = []
        for j, i in enumerate(idx):
            diff = self._make_diff(i, self._mask[i], masks[j], 0, 0)
            if diff is not None:
                diffs.append(diff)
        if isinstance(review_state, dict):
            review = review_state or None
        else:
            review = {i: review_state for i in idx} if review_state is not None else None
        return self._apply_new(label, diffs, auto_correct=False, review=review)

    def clear_slice(self, i: int) -> list[Region]:
        """Erase all of slice ``i`` (undo step "Clear slice N")."""
        i = self._check_index(i)
        return self._replace_one(i, np.zeros(self._shape[1:], dtype=np.uint8), f"Clear slice {i + 1}")

    def fill_holes(self, i: int) -> list[Region]:
        """Fill background areas of slice ``i`` enclosed by mask (4-connected background; "Fill holes (slice N)")."""
        i = self._check_index(i)
        self._finish_stroke()
        return self._replace_one(i, filled_holes(self._mask[i]), f"Fill holes (slice {i + 1})")

    def keep_largest_region(self, i: int) -> list[Region]:
        """Keep only the largest 8-connected region of slice ``i`` ("Keep largest region (slice N)").

        Ties go to the region met first in row-major order. A slice with fewer than two regions is left alone.
        """
        i = self._check_index(i)
        self._finish_stroke()
        largest = largest_region(self._mask[i])
        if largest is None:
            return []
        return self._replace_one(i, largest, f"Keep largest region (slice {i + 1})")

    def copy_slice(self, src: int, dst: int) -> list[Region]:
        """Make slice ``dst`` a copy of slice ``src`` ("Copy slice S to slice D")."""
        src, dst = self._check_index(src), self._check_index(dst)
        self._finish_stroke()
        if src == dst:
            return []
        return self._replace_one(dst, self._mask[src].copy(), f"Copy slice {src + 1} to slice {dst + 1}")

    def _replace_one(self, i: int, new: np.ndarray, label: str) -> list[Region]:
        self._finish_stroke()
        diff = self._make_diff(i, self._mask[i], new, 0, 0)
        return self._apply_new(label, [diff] if diff is not None else [], auto_correct=True)

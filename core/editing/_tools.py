"""Pure per-slice mask operations behind :class:`core.editing.MaskEditor`'s slice tools.

All take and return ``(rows, cols)`` 0/1 arrays; the editor turns the result into one undoable step.
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def filled_holes(mask2d: np.ndarray) -> np.ndarray:
    """``mask2d`` with every background area not 4-connected to the border filled in (bool array)."""
    return ndimage.binary_fill_holes(mask2d != 0)


def largest_region(mask2d: np.ndarray) -> Optional[np.ndarray]:
    """The largest 8-connected region of ``mask2d`` as a bool array; ``None`` when there are fewer than two
    regions (nothing to remove). Ties go to the region met first in row-major order."""
    labels, count = ndimage.label(mask2d != 0, structure=_EIGHT_CONNECTED)
    if count <= 1:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def as_binary(mask2d: np.ndarray) -> np.ndarray:
    """``mask2d`` as uint8 0/1 without copying when it already is (nonzero means 1)."""
    if mask2d.dtype == np.uint8 and mask2d.max(initial=0) <= 1:
        return mask2d
    if mask2d.dtype == bool:
        return mask2d.view(np.uint8)
    return (mask2d != 0).view(np.uint8)


def slice_batch(indices: Union[int, Iterable[int], None], masks: np.ndarray, n_slices: int
                ) -> tuple[list[int], np.ndarray]:
    """Normalise ``set_slices`` arguments: ``(list of indices, (k, rows, cols) masks)``.

    ``indices`` is one int (``masks`` may then be 2-D), an iterable of ints, or ``None`` for all slices.
    """
    masks = np.asarray(masks)
    if indices is None:
        return list(range(n_slices)), masks
    if isinstance(indices, (int, np.integer)) and not isinstance(indices, bool):
        return [int(indices)], (masks[None] if masks.ndim == 2 else masks)
    return [int(i) for i in indices], masks

"""One open scan and everything the window knows about it (Qt-free).

:class:`ScanSession` bundles the :class:`core.types.Volume`, the :class:`core.editing.MaskEditor` that owns the
working mask and its undo history, the AI prediction as it arrives, where Save writes to, and why the scan is
read-only (another window holds its edit lock). Arrays are ``(n_slices, rows, cols)``; masks uint8 0/1;
probabilities float32 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from core.editing import MaskEditor
from core.types import Volume
from heartseg_gui.display import volume_value_range


@dataclass
class SaveTarget:
    """Where File ▸ Save writes: the Kaggle-layout patient folder ``patient_dir`` (``image/`` + ``mask/``), whose
    mask files are named ``slice_names`` (one stem per slice, in slice order)."""

    patient_dir: Path
    slice_names: list[str]

    @property
    def patient_id(self) -> str:
        return self.patient_dir.name


@dataclass
class PixelInfo:
    row: int
    col: int
    value: float
    position_mm: Optional[tuple[float, float, float]]  # world (x, y, z) mm (RAS+), or None without geometry


class ScanSession:
    """The open scan, its working mask (through ``editor``) and the AI prediction."""

    def __init__(self, volume: Volume, origin: Path | None = None, save_target: Optional[SaveTarget] = None):
        self.volume = volume
        self.origin = None if origin is None else Path(origin)
        self.save_target = save_target if save_target is not None else kaggle_save_target(volume)
        self.editor = MaskEditor(volume.voxels.shape, initial=volume.mask)
        #: why this scan cannot be edited or saved here ("" when it can): set by the edit lock on opening
        self.read_only_reason = ""
        shape = volume.voxels.shape
        self.ai_mask = np.zeros(shape, dtype=np.uint8)
        self.ai_done = np.zeros(shape[0], dtype=bool)
        # where to look first (core.review): per-slice uncertainty (NaN until predicted), the uint8 confidence maps
        # at the model grid (for the overlay), QC flags of the AI mask, and seconds on screen since the last save
        self.uncertainty = np.full(shape[0], np.nan, dtype=np.float32)
        self.confidence: Optional[np.ndarray] = None
        self.flags: list[list[str]] = [[] for _ in range(shape[0])]
        self.scan_flags: list[str] = []
        self.seconds = np.zeros(shape[0], dtype=np.float64)
        self.value_range = volume_value_range(volume.voxels)
        # per-slice overlap statistics for the Dice read-outs, recomputed only for slices marked stale
        n = shape[0]
        self._inter = np.zeros(n, dtype=np.int64)
        self._ai_area = np.zeros(n, dtype=np.int64)
        self._stale = np.ones(n, dtype=bool)

    @property
    def read_only(self) -> bool:
        return bool(self.read_only_reason)

    # --- geometry ---------------------------------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return self.volume.n_slices

    @property
    def has_dataset_mask(self) -> bool:
        return self.volume.mask is not None

    @property
    def dataset_mask(self) -> Optional[np.ndarray]:
        return self.volume.mask

    def pixel_area_mm2(self) -> Optional[float]:
        sp = self.volume.spacing
        return None if sp is None else float(sp[1] * sp[2])

    def pixel_aspect(self) -> float:
        """Display width/height of one pixel (column spacing / row spacing); 1.0 without spacing."""
        sp = self.volume.spacing
        if sp is None or sp[1] <= 0:
            return 1.0
        return float(sp[2] / sp[1])

    def pixel_info(self, slice_index: int, row: int, col: int) -> Optional[PixelInfo]:
        """Value and world position of voxel ``(slice_index, row, col)``; None outside the image."""
        n, rows, cols = self.volume.voxels.shape
        if not (0 <= slice_index < n and 0 <= row < rows and 0 <= col < cols):
            return None
        value = float(self.volume.voxels[slice_index, row, col])
        pos = None
        if self.volume.affine is not None:
            world = np.asarray(self.volume.affine, dtype=np.float64) @ np.array([col, row, slice_index, 1.0])
            pos = (float(world[0]), float(world[1]), float(world[2]))
        elif self.volume.spacing is not None:
            s, r, c = self.volume.spacing
            pos = (col * c, row * r, slice_index * s)
        return PixelInfo(row, col, value, pos)

    # --- AI prediction ---------------------------------------------------------------------------------------
    def reset_prediction(self) -> None:
        self.ai_mask[:] = 0
        self.ai_done[:] = False
        self._stale[:] = True
        self.uncertainty[:] = np.nan
        self.confidence = None
        self.flags = [[] for _ in range(self.n_slices)]
        self.scan_flags = []

    def set_uncertainty(self, indices, scores: np.ndarray, maps: Optional[np.ndarray]) -> None:
        """Scores ``(k,)`` and confidence maps ``(k, s, s)`` uint8 of slices ``indices`` (core.review)."""
        idx = np.asarray(list(indices), dtype=np.intp)
        self.uncertainty[idx] = scores
        if maps is not None:
            if self.confidence is None or self.confidence.shape[1:] != maps.shape[1:]:
                self.confidence = np.zeros((self.n_slices,) + maps.shape[1:], np.uint8)
            self.confidence[idx] = maps

    def set_flags(self, flags: list, scan_flags: list) -> None:
        self.flags = [list(f) for f in flags]
        self.scan_flags = list(scan_flags)

    def confidence_slice(self, slice_index: int) -> Optional[np.ndarray]:
        """The confidence map of one slice on the slice's own grid (uint8, 255 = p near 0.5), or None."""
        if self.confidence is None or not self.ai_done[slice_index]:
            return None
        rows, cols = self.volume.slice_shape
        return cv2.resize(self.confidence[slice_index], (cols, rows), interpolation=cv2.INTER_LINEAR)

    def add_seconds(self, slice_index: int, seconds: float) -> None:
        if 0 <= slice_index < self.n_slices and seconds > 0:
            self.seconds[slice_index] += seconds

    def set_prediction(self, indices, masks: np.ndarray) -> None:
        """Store the AI masks ``(k, rows, cols)`` uint8 0/1 of slices ``indices`` (probabilities are not kept)."""
        idx = np.asarray(list(indices), dtype=np.intp)
        self.ai_mask[idx] = masks
        self.ai_done[idx] = True
        self._stale[idx] = True

    def mark_changed(self, slices) -> None:
        """The working mask of ``slices`` changed (None: all): their Dice statistics are recomputed when read."""
        if slices is None:
            self._stale[:] = True
        else:
            self._stale[list(slices)] = True

    def _refresh_stats(self) -> None:
        for i in np.flatnonzero(self._stale):
            work = self.editor.slice_mask(int(i))
            ai = self.ai_mask[i]
            self._inter[i] = int(np.count_nonzero(ai & work))
            self._ai_area[i] = int(np.count_nonzero(ai))
        self._stale[:] = False

    def ai_areas(self) -> np.ndarray:
        """AI mask area (pixels) per slice, from the cached per-slice statistics (only slices whose prediction
        or working mask changed are recounted)."""
        self._refresh_stats()
        return self._ai_area.copy()

    @property
    def has_prediction(self) -> bool:
        return bool(self.ai_done.any())

    @property
    def prediction_complete(self) -> bool:
        return bool(self.ai_done.all())

    # --- measurements ----------------------------------------------------------------------------------------
    def slice_area(self, slice_index: int) -> tuple[float, str]:
        """Working-mask area on one slice: ``(value, unit)`` in mm² where spacing is known, else pixels."""
        px = int(self.editor.area_px(slice_index))
        a = self.pixel_area_mm2()
        return (px * a, "mm²") if a is not None else (float(px), "px")

    def mask_volume_ml(self) -> Optional[float]:
        """Working-mask volume in millilitres, or None without spacing."""
        v = self.volume.voxel_volume_ml()
        return None if v is None else self.mask_voxels() * v

    def mask_voxels(self) -> int:
        return int(self.editor.total_voxels())

    def _dice_of(self, idx: np.ndarray) -> float:
        """Pooled Dice (AI vs working) over slices ``idx``; 1.0 where both are empty (:func:`core.metrics.dice`)."""
        self._refresh_stats()
        inter = int(self._inter[idx].sum())
        total = int(self._ai_area[idx].sum()) + sum(self.editor.area_px(int(i)) for i in idx)
        return 1.0 if total == 0 else 2.0 * inter / total

    def dice_slice(self, slice_index: int) -> Optional[float]:
        """Dice of the AI mask and the working mask on one slice; None until that slice is predicted, and None
        where both are empty (no heart on either: nothing to score, shown as "—", not as a perfect 1.000)."""
        if not self.ai_done[slice_index]:
            return None
        self._refresh_stats()
        if self._ai_area[slice_index] == 0 and self.editor.area_px(slice_index) == 0:
            return None
        return self._dice_of(np.array([slice_index]))

    def dice_scan(self) -> Optional[float]:
        """Pooled Dice of AI vs working mask over the predicted slices; None before any prediction."""
        if not self.ai_done.any():
            return None
        return self._dice_of(np.flatnonzero(self.ai_done))


def kaggle_save_target(volume: Volume) -> Optional[SaveTarget]:
    """For a Kaggle patient (``<pid>/image/*.png``) its own folder; None for other scans (Save asks where)."""
    if volume.kind != "kaggle_patient" or not volume.source_files:
        return None
    return SaveTarget(Path(volume.source_files[0]).parent.parent, list(volume.slice_names))

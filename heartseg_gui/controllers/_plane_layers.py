"""The layers of the coronal and sagittal planes (a mixin of :class:`~heartseg_gui.controllers.planes.PlaneViewer`):
each plane's image, working / AI / dataset masks and confidence map at the crosshair, redrawn in full on a move and
only where a stroke or a prediction batch changed them otherwise.

Sagittal planes are the slow read of a C-ordered volume (one cache line per voxel of ``volume[:, :, c]``): the
image comes from the scan's columns-first copy once it is built
(:class:`~heartseg_gui.views.planes.ColumnMajorCopy`), each mask through its per-slice boxes
(:class:`~heartseg_gui.views.planes.MaskBounds`, kept exact while the planes are hidden too).
"""

from __future__ import annotations

import cv2
import numpy as np

from heartseg_gui import display
from heartseg_gui.views.planes import CORONAL, SAGITTAL, plane_axis, plane_of

REFORMATTED = (CORONAL, SAGITTAL)


class PlaneLayersMixin:
    """Needs ``c`` (the controller), ``views``, ``viewer``, ``rows``, ``point``, ``bounds``, ``column_copy``,
    ``confidence_visible`` and ``shown`` (:class:`~heartseg_gui.controllers.planes.PlaneViewer`)."""

    def _plane(self, volume: np.ndarray, plane: str, fill=0) -> np.ndarray:
        """``plane``'s 2-D image of ``volume`` at the point, its rows spread over the stack's gaps."""
        return self.rows.spread(plane_of(volume, plane, self.point[plane_axis(plane)]), fill)

    def _mask_plane(self, key: str, mask: np.ndarray, plane: str) -> np.ndarray:
        """:meth:`_plane` of layer ``key``'s mask; a sagittal plane reads only inside the mask's per-slice boxes
        (:class:`~heartseg_gui.views.planes.MaskBounds`)."""
        bounds = self.bounds.get(key)
        if plane != SAGITTAL or bounds is None or bounds.shape != mask.shape:
            return self._plane(mask, plane)
        return self.rows.spread(bounds.sagittal(mask, self.point[2]), 0)

    def _draw(self, plane: str) -> None:
        s = self.c.session
        view = self.views[plane]
        index = self.point[plane_axis(plane)]
        copy = self.column_copy
        pixels = copy.sagittal(index) if plane == SAGITTAL and copy is not None and copy.source is s.volume.voxels \
            else plane_of(s.volume.voxels, plane, index)
        image = self.rows.spread(display.as_display_image(pixels), np.nan)
        view.set_image(image, self.viewer.levels)
        view.set_layer_mask("working", self._mask_plane("working", s.editor.mask, plane))
        view.set_layer_mask("ai", self._mask_plane("ai", s.ai_mask, plane) if s.has_prediction else None)
        view.set_layer_mask("dataset", self._mask_plane("dataset", s.dataset_mask, plane)
                            if s.has_dataset_mask else None)
        self._draw_confidence(plane)

    def _draw_confidence(self, plane: str) -> None:
        s = self.c.session
        view = self.views[plane]
        if not self.confidence_visible or s.confidence is None:
            view.set_confidence(None)
            return
        _, rows, cols = s.volume.voxels.shape
        grid = s.confidence.shape[1]
        index = self.point[plane_axis(plane)]
        size = rows if plane == CORONAL else cols
        g = min(grid - 1, int(index * grid / size))
        conf = s.confidence[:, g, :] if plane == CORONAL else s.confidence[:, :, g]   # (n_slices, grid)
        width = cols if plane == CORONAL else rows
        conf = cv2.resize(np.ascontiguousarray(conf), (width, conf.shape[0]), interpolation=cv2.INTER_LINEAR)
        conf[~s.ai_done] = 0
        view.set_confidence(self.rows.spread(conf, 0))

    def set_confidence_visible(self, on: bool) -> None:
        self.confidence_visible = bool(on)
        for plane in REFORMATTED:
            self.views[plane].set_confidence_visible(on)
        if self.shown:
            for plane in REFORMATTED:
                self._draw_confidence(plane)

    def set_levels(self, levels: tuple[float, float]) -> None:
        for plane in REFORMATTED:
            self.views[plane].set_levels(levels)

    def on_prediction(self, indices) -> None:
        """A prediction batch arrived for axial slices ``indices``: in each reformatted plane only the display rows
        they span are copied and repainted (a full AI layer per batch cost a strided read of the whole plane)."""
        s = self.c.session
        idx = np.asarray(list(indices), dtype=np.intp)
        if s is not None and "ai" in self.bounds:
            self.bounds["ai"].recompute(s.ai_mask, idx)   # kept exact while the planes are hidden too
        if not self.shown or idx.size == 0:
            return
        d = self.rows.row_of_slice[idx[(idx >= 0) & (idx < self.rows.row_of_slice.size)]]
        for plane in REFORMATTED:
            ai = self._plane(s.ai_mask, plane)
            if d.size:
                self.views[plane].update_layer_region("ai", ai, int(d.min()), int(d.max()) + 1, 0, ai.shape[1])
            self._draw_confidence(plane)

    def on_mask_changed(self, regions) -> None:
        """Repaint the working layer of each plane where ``regions`` (axial Regions, a list, or None) cut it."""
        s = self.c.session
        items = None if regions is None else \
            [r for r in (regions if isinstance(regions, (list, tuple)) else [regions]) if r is not None]
        self._track_working(items)
        if not self.shown:
            return
        if items is None:
            for plane in REFORMATTED:
                self.views[plane].set_layer_mask("working", self._mask_plane("working", s.editor.mask, plane))
            return
        if not items:
            return
        _, row, col = self.point
        for plane in REFORMATTED:
            if plane == CORONAL:
                hit = [r for r in items if r.row0 <= row < r.row1]
                spans = [(r.col0, r.col1) for r in hit]
            else:
                hit = [r for r in items if r.col0 <= col < r.col1]
                spans = [(r.row0, r.row1) for r in hit]
            if not hit:
                continue
            d = self.rows.row_of_slice[[r.slice_index for r in hit]]
            self.views[plane].update_layer_region("working", self._plane(s.editor.mask, plane), int(d.min()),
                                                  int(d.max()) + 1, min(a for a, _ in spans),
                                                  max(b for _, b in spans))

    def _track_working(self, regions) -> None:
        """Widen the working mask's boxes by every changed region (a list; None: all slices measured again)."""
        s = self.c.session
        bounds = self.bounds.get("working")
        if s is None or bounds is None:
            return
        if regions is None:
            bounds.recompute(s.editor.mask)
            return
        for r in regions:
            bounds.grow(r.slice_index, r.row0, r.row1, r.col0, r.col1)

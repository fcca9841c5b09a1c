"""The slice view: one CT slice with mask layers, a brush cursor, zoom / pan, and painting *intents*.

The view never edits a mask. Mouse input becomes signals in image coordinates (``row``, ``col`` as floats, pixel
centres at integers): ``strokeStarted(row, col, erase)``, ``strokeMoved(row, col)``, ``strokeFinished()``; the
controller applies them through ``MaskEditor`` and tells the view which region changed.

Mouse: left drag paints with the brush / eraser (pans with the navigate tool, or moves the crosshair when it is
on: ``pointPicked(row, col)``); Shift held erases temporarily; middle drag pans; right drag adjusts window
(horizontal) and level (vertical); wheel changes slice (this view's own slices); Ctrl+wheel zooms.

The same view shows the axial, coronal or sagittal plane (``plane``; see :mod:`heartseg_gui.views.planes`), with
a crosshair and the orientation letters at its edges.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QLabel

from heartseg_gui.display import LAYERS, as_display_image
from heartseg_gui.views.mask_layer import MaskLayerItem

#: what Qt draws scaled fastest: an 8-bit grey or indexed image costs about 6x an RGB32 one (512² drawn into 500 x
#: 850 px on the build machine: 1.06 and 1.63 ms against 0.16 and 0.22 ms), the conversion 0.2 ms once per image
_FAST_FORMAT = {QImage.Format.Format_Grayscale8: QImage.Format.Format_RGB32,
                QImage.Format.Format_Indexed8: QImage.Format.Format_ARGB32_Premultiplied}


class DisplayImageItem(pg.ImageItem):
    """pyqtgraph's ``ImageItem`` whose rendered image is converted once to the format Qt draws fastest (the image
    is drawn on every repaint and rendered only when its data or levels change)."""

    def render(self):
        super().render()
        q = self.qimage
        if q is not None and q.format() in _FAST_FORMAT:
            self.qimage = q.convertToFormat(_FAST_FORMAT[q.format()])

NAVIGATE, BRUSH, ERASER = "navigate", "brush", "eraser"


def confidence_lut() -> np.ndarray:
    """256 RGBA entries: fully transparent below 40 (the model is sure), then yellow -> red, more opaque as the
    probability nears 0.5."""
    lut = np.zeros((256, 4), np.uint8)
    v = np.arange(256, dtype=np.float32) / 255.0
    on = v >= 40 / 255.0
    lut[:, 0] = 255
    lut[:, 1] = np.clip(255 * (1.0 - v) * 1.6, 0, 255).astype(np.uint8)
    lut[:, 3] = np.where(on, np.clip(60 + 170 * v, 0, 230), 0).astype(np.uint8)
    return lut


class SliceViewBox(pg.ViewBox):
    """A ViewBox that turns mouse gestures into intents instead of panning with every button."""

    def __init__(self, view: "SliceView"):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._view = view
        self.setMouseMode(pg.ViewBox.PanMode)

    def _image_pos(self, pos) -> tuple[float, float]:
        p = self.mapToView(pos)
        return float(p.y()) - 0.5, float(p.x()) - 0.5

    def mouseDragEvent(self, ev, axis=None):
        view = self._view
        if ev.button() == Qt.MouseButton.LeftButton and view.painting_refused():
            ev.accept()
            if ev.isStart():
                view.paintRefused.emit()
            return
        if ev.button() == Qt.MouseButton.LeftButton and view.painting_enabled():
            ev.accept()
            if ev.isStart():
                row, col = self._image_pos(ev.buttonDownPos())
                view._start_stroke(row, col, bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            row, col = self._image_pos(ev.pos())
            view._move_stroke(row, col)
            if ev.isFinish():
                view._finish_stroke()
            return
        if ev.button() == Qt.MouseButton.LeftButton and view.picking_enabled():
            ev.accept()
            view.pointPicked.emit(*self._image_pos(ev.pos()))
            return
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.lastScreenPos()
            view.windowLevelDragged.emit(float(delta.x()), float(-delta.y()))
            return
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            # pan with left (navigate tool) or middle: pretend it is the left button in pan mode
            super().mouseDragEvent(_AsLeftButton(ev), axis)
            return
        ev.ignore()

    def mouseClickEvent(self, ev):
        view = self._view
        if ev.button() == Qt.MouseButton.LeftButton and view.painting_refused():
            ev.accept()
            view.paintRefused.emit()
            return
        if ev.button() == Qt.MouseButton.LeftButton and view.painting_enabled():
            ev.accept()
            row, col = self._image_pos(ev.pos())
            view._start_stroke(row, col, bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            view._finish_stroke()
            return
        if ev.button() == Qt.MouseButton.LeftButton and view.picking_enabled():
            view.pointPicked.emit(*self._image_pos(ev.pos()))
        ev.accept()

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self._view.sliceStepRequested.emit(-1 if delta > 0 else +1)
        ev.accept()


class _AsLeftButton:
    """Wraps a pyqtgraph drag event so ViewBox pans for the middle button as it does for the left."""

    def __init__(self, ev):
        self._ev = ev

    def button(self):
        return Qt.MouseButton.LeftButton

    def __getattr__(self, name):
        return getattr(self._ev, name)


class SliceView(pg.GraphicsView):
    strokeStarted = Signal(float, float, bool)   # row, col, erase
    strokeMoved = Signal(float, float)           # row, col
    strokeFinished = Signal()
    hovered = Signal(int, int)                   # row, col under the mouse (-1, -1 outside the image)
    sliceStepRequested = Signal(int)
    windowLevelDragged = Signal(float, float)    # screen pixels: right (+ wider), up (+ higher level)
    pointPicked = Signal(float, float)           # row, col clicked / dragged to with the crosshair on
    paintRefused = Signal()                      # a brush / eraser press on a view that shows but never edits

    def __init__(self, parent=None, *, interactive: bool = True, plane: str = "axial"):
        super().__init__(parent)
        self.plane = plane
        self.setBackground("k")
        self.viewbox = SliceViewBox(self)
        self.setCentralItem(self.viewbox)
        self.image_item = DisplayImageItem(axisOrder="row-major")
        self.image_item.setAutoDownsample(False)
        self.viewbox.addItem(self.image_item)
        self.layers: dict[str, MaskLayerItem] = {}
        for style in LAYERS:
            item = MaskLayerItem(style.rgb, outline_mode=style.key != "working")
            item.setZValue({"dataset": 1, "ai": 2, "working": 3}[style.key])
            self.viewbox.addItem(item)
            self.layers[style.key] = item
        # the AI's doubt as a heat map (core.review.uncertainty.confidence_map): transparent where the model is
        # sure, yellow to red where p is near 0.5; under the mask outlines, hidden until View ▸ Show AI confidence
        self.confidence_item = DisplayImageItem(axisOrder="row-major")
        self.confidence_item.setAutoDownsample(False)
        self.confidence_item.setLookupTable(confidence_lut())
        self.confidence_item.setZValue(0.5)
        self.confidence_item.setVisible(False)
        self.viewbox.addItem(self.confidence_item)
        self.cursor_item = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255, 220))
        pen.setCosmetic(True)
        pen.setWidthF(1.2)
        self.cursor_item.setPen(pen)
        self.cursor_item.setZValue(10)
        self.cursor_item.setVisible(False)
        self.viewbox.addItem(self.cursor_item, ignoreBounds=True)
        # the crosshair: where the other two planes cut this one (hidden until set_crosshair_visible)
        cross_pen = pg.mkPen(QColor(255, 230, 0, 170), width=1)
        self.cross_h = pg.InfiniteLine(angle=0, movable=False, pen=cross_pen)
        self.cross_v = pg.InfiniteLine(angle=90, movable=False, pen=cross_pen)
        for line in (self.cross_h, self.cross_v):
            line.setZValue(9)
            line.setVisible(False)
            self.viewbox.addItem(line, ignoreBounds=True)
        self.crosshair_on = False
        self.letters: dict[str, QLabel] = {}
        for edge in ("top", "bottom", "left", "right"):
            label = QLabel("", self)
            label.setStyleSheet("color: rgb(255, 230, 0); font-weight: bold; background: transparent;")
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
            label.setVisible(False)
            self.letters[edge] = label
        self._interactive = interactive
        self.tool = NAVIGATE
        self.brush_radius = 5.0
        self._stroking = False
        self._shape: tuple[int, int] = (0, 0)
        self._last_hover = (-1, -1)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.setMouseTracking(True)

    # --- image --------------------------------------------------------------------------------------------------
    def set_image(self, pixels: np.ndarray, levels: tuple[float, float]) -> None:
        """Show one slice ``(rows, cols)`` (any real dtype; drawn as float32) with explicit levels."""
        data = as_display_image(pixels)
        first = self._shape != data.shape
        self._shape = data.shape
        self.image_item.setImage(data, autoLevels=False, levels=levels)
        if first:
            self.reset_zoom()

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.image_item.setLevels(levels)

    @property
    def has_image(self) -> bool:
        """Whether the view shows an image (not cleared)."""
        return self._shape != (0, 0)

    def set_pixel_aspect(self, aspect: float) -> None:
        """Width / height of one pixel on screen (column spacing / row spacing)."""
        self.viewbox.setAspectLocked(True, ratio=aspect if aspect > 0 else 1.0)

    def reset_zoom(self) -> None:
        rows, cols = self._shape
        if rows and cols:
            self.viewbox.setRange(QRectF(0, 0, cols, rows), padding=0.02)

    def set_confidence(self, conf: Optional[np.ndarray]) -> None:
        """The confidence map of the slice on screen (uint8 on the slice grid, 255 = p near 0.5) or None."""
        if conf is None:
            self.confidence_item.clear()
        else:
            self.confidence_item.setImage(conf, autoLevels=False, levels=(0, 255))

    def set_confidence_visible(self, visible: bool) -> None:
        self.confidence_item.setVisible(bool(visible))

    def clear(self) -> None:
        self.image_item.clear()
        self.confidence_item.clear()
        for layer in self.layers.values():
            layer.set_mask(None)
        self._shape = (0, 0)

    # --- layers ----------------------------------------------------------------------------------------------------
    def set_layer_mask(self, key: str, mask: Optional[np.ndarray]) -> None:
        self.layers[key].set_mask(mask)

    def update_layer_region(self, key: str, mask: np.ndarray, row0: int, row1: int, col0: int, col1: int) -> None:
        self.layers[key].update_region(mask, row0, row1, col0, col1)

    def set_layer_visible(self, key: str, visible: bool) -> None:
        self.layers[key].setVisible(bool(visible))

    def set_layer_outline(self, key: str, outline: bool) -> None:
        self.layers[key].set_outline(outline)

    def set_layer_opacity(self, key: str, opacity: float) -> None:
        self.layers[key].setOpacity(float(opacity))

    # --- tools -------------------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self._update_cursor()

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = float(radius)
        self._update_cursor()

    def painting_enabled(self) -> bool:
        return self._interactive and self.tool in (BRUSH, ERASER) and self._shape != (0, 0)

    def painting_refused(self) -> bool:
        """A brush or eraser press here paints nothing (a read-only view, e.g. compare mode's AI panel): the
        view says so with ``paintRefused`` instead of panning silently."""
        return not self._interactive and self.tool in (BRUSH, ERASER) and self._shape != (0, 0)

    def picking_enabled(self) -> bool:
        """Left click / drag moves the crosshair (navigate tool, crosshair on)."""
        return self._interactive and self.crosshair_on and self.tool == NAVIGATE and self._shape != (0, 0)

    # --- crosshair and orientation letters ----------------------------------------------------------------------
    def set_crosshair(self, row: int, col: int) -> None:
        """Put the crosshair through the centre of pixel ``(row, col)``."""
        self.cross_h.setValue(row + 0.5)
        self.cross_v.setValue(col + 0.5)

    def set_crosshair_visible(self, on: bool) -> None:
        self.crosshair_on = bool(on)
        self.cross_h.setVisible(self.crosshair_on)
        self.cross_v.setVisible(self.crosshair_on)

    @property
    def crosshair(self) -> tuple[float, float]:
        """``(row, col)`` of the crosshair's pixel (for tests)."""
        return float(self.cross_h.value()) - 0.5, float(self.cross_v.value()) - 0.5

    def set_orientation_letters(self, letters: Optional[tuple[str, str, str, str]]) -> None:
        """The letters at the (top, bottom, left, right) edges, or None to hide them."""
        for edge, label in self.letters.items():
            label.setVisible(letters is not None)
            if letters is not None:
                label.setText(letters[("top", "bottom", "left", "right").index(edge)])
                label.adjustSize()
        self._place_letters()

    def _place_letters(self) -> None:
        w, h = self.width(), self.height()
        for edge, label in getattr(self, "letters", {}).items():  # resizeEvent comes during construction
            lw, lh = label.width(), label.height()
            x, y = {"top": ((w - lw) // 2, 2), "bottom": ((w - lw) // 2, h - lh - 2),
                    "left": (4, (h - lh) // 2), "right": (w - lw - 4, (h - lh) // 2)}[edge]
            label.move(x, y)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self._place_letters()

    def _start_stroke(self, row: float, col: float, shift: bool) -> None:
        erase = (self.tool == ERASER) != bool(shift)
        self._stroking = True
        self.strokeStarted.emit(row, col, erase)

    def _move_stroke(self, row: float, col: float) -> None:
        if self._stroking:
            self.strokeMoved.emit(row, col)
            self._place_cursor(row, col)

    def _finish_stroke(self) -> None:
        if self._stroking:
            self._stroking = False
            self.strokeFinished.emit()

    # --- hover and cursor ---------------------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos) -> None:
        if self._shape == (0, 0):
            return
        p = self.viewbox.mapSceneToView(scene_pos)
        row_f, col_f = float(p.y()) - 0.5, float(p.x()) - 0.5
        self._place_cursor(row_f, col_f)
        row, col = int(np.floor(p.y())), int(np.floor(p.x()))
        rows, cols = self._shape
        if not (0 <= row < rows and 0 <= col < cols):
            row, col = -1, -1
        if (row, col) != self._last_hover:
            self._last_hover = (row, col)
            self.hovered.emit(row, col)

    def _place_cursor(self, row: float, col: float) -> None:
        r = self.brush_radius
        self.cursor_item.setRect(QRectF(col + 0.5 - r, row + 0.5 - r, 2 * r, 2 * r))
        self._update_cursor()

    def _update_cursor(self) -> None:
        self.cursor_item.setVisible(self.painting_enabled() and self.underMouse())
        rect = self.cursor_item.rect()
        if rect.width() > 0:
            c = rect.center()
            r = self.brush_radius
            self.cursor_item.setRect(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r))

    def leaveEvent(self, ev):
        self.cursor_item.setVisible(False)
        if self._last_hover != (-1, -1):
            self._last_hover = (-1, -1)
            self.hovered.emit(-1, -1)
        super().leaveEvent(ev)

    def enterEvent(self, ev):
        super().enterEvent(ev)
        self._update_cursor()

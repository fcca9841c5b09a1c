"""Area per slice (pyqtgraph): the AI mask and the working mask, the current slice marked, QC-flagged slices
marked; a click goes to that slice. Where the slices are not neighbours the curves are drawn as points only."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGraphicsItem, QVBoxLayout, QWidget


class AreaPlot(QWidget):
    sliceChosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("k")
        self.plot.setLabel("bottom", "slice")
        self.plot.setLabel("left", "area")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        # The axes draw the grid over the whole plot, so every repaint of the plot (the current-slice line moves
        # on each slice change) repainted their text and lines: about 10 ms offscreen. Cached, they are re-drawn
        # only when their range or size changes.
        for name in ("left", "bottom"):
            self.plot.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.plot.addLegend(offset=(5, 5))
        self.plot.setMouseEnabled(x=True, y=False)
        # The ranges are set here, not auto-ranged: auto-range re-fitted the view on every update (a stroke updates
        # the working curve every 150 ms) and each new range re-rendered the axes, 17 ms at p95 offscreen against
        # 3.6 ms with a fixed range. The x range follows the slice count; the y range grows with 15 % headroom
        # when a curve outgrows it and shrinks when the curves fall under half of it.
        self.plot.getViewBox().disableAutoRange()
        self._y_top = 0.0
        self.ai_curve = self.plot.plot([], [], pen=pg.mkPen((255, 160, 40), width=1.5), name="AI")
        self.work_curve = self.plot.plot([], [], pen=pg.mkPen((60, 220, 90), width=1.5), name="working")
        self.flag_points = pg.ScatterPlotItem(size=8, brush=pg.mkBrush(255, 60, 60), pen=None, name="QC flag")
        self.plot.addItem(self.flag_points)
        self.current = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((200, 200, 255), width=1))
        self.plot.addItem(self.current)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self._n = 0
        self.unit = "px"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def clear(self) -> None:
        self._n = 0
        self._y_top = 0.0
        self.ai_curve.setData([], [])
        self.work_curve.setData([], [])
        self.flag_points.clear()

    def set_unit(self, unit: str, adjacent: bool) -> None:
        self.unit = unit
        self.plot.setLabel("left", f"area ({unit})")
        symbol = None if adjacent else "o"
        for curve in (self.ai_curve, self.work_curve):
            curve.setSymbol(symbol)
            curve.setSymbolSize(4)

    def set_areas(self, ai: np.ndarray, working: np.ndarray, ai_done: np.ndarray, flagged) -> None:
        """``ai``, ``working``: area per slice (the unit of :meth:`set_unit`); slices not predicted are gaps."""
        n = len(working)
        if n != self._n:
            self.plot.setXRange(0.5, n + 0.5, padding=0)
        self._n = n
        x = np.arange(1, n + 1, dtype=np.float64)  # slices numbered as on screen
        ai_y = np.where(ai_done, ai, np.nan).astype(np.float64)
        if np.any(ai_done):
            self.ai_curve.setData(x, ai_y, connect="finite")
        else:  # nothing predicted yet (an all-NaN curve makes pyqtgraph warn)
            self.ai_curve.setData([], [])
        self.work_curve.setData(x, np.asarray(working, np.float64))
        self._fit_y(max(float(np.nanmax(ai_y)) if np.any(ai_done) else 0.0,
                        float(np.max(working)) if n else 0.0))
        idx = [i for i in flagged if ai_done[i]]
        if idx:
            self.flag_points.setData(x[idx], ai_y[idx])
        else:
            self.flag_points.clear()

    def _fit_y(self, top: float) -> None:
        new = top * 1.15 if top > 0 else 1.0
        if (top > self._y_top or top < 0.5 * self._y_top or self._y_top == 0.0) and new != self._y_top:
            self._y_top = new
            self.plot.setYRange(0.0, new, padding=0)

    def set_current(self, index: int) -> None:
        self.current.setValue(index + 1)

    def _clicked(self, ev) -> None:
        if self._n == 0:
            return
        pos = self.plot.getViewBox().mapSceneToView(ev.scenePos())
        self.choose_x(float(pos.x()))

    def choose_x(self, x: float) -> None:
        """Go to the slice nearest plot position ``x`` (slices are numbered from 1)."""
        if self._n:
            self.sliceChosen.emit(int(min(self._n - 1, max(0, round(x) - 1))))

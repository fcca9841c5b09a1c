"""Compare mode: the slice with the working mask, where brush and eraser work, beside the dataset mask and the
predicted mask (the seed's figure: image | dataset mask | predicted mask), zoom and pan linked.

The working panel (``panels["image"]``) takes the left two thirds at full height so a 512-pixel slice is not shrunk
to a third of the view; the dataset and AI panels are stacked on the right. Painting in the working panel emits the
same intents as the axial view (``strokeStarted`` / ``strokeMoved`` / ``strokeFinished``); a brush press on the
dataset or AI panel emits ``paintRefused`` (those panels show masks, they never edit one).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from heartseg_gui.views.slice_view import SliceView

PANELS = (("image", "Working mask (paint here)"), ("dataset", "Dataset mask"), ("ai", "Predicted mask"))
#: grid cell (row, col, row span) of each panel
CELLS = {"image": (0, 0, 2), "dataset": (0, 1, 1), "ai": (1, 1, 1)}


class CompareView(QWidget):
    sliceStepRequested = Signal(int)
    hovered = Signal(int, int)
    strokeStarted = Signal(float, float, bool)   # row, col, erase (in the working panel)
    strokeMoved = Signal(float, float)
    strokeFinished = Signal()
    paintRefused = Signal()                      # brush / eraser pressed on the dataset or AI panel

    def __init__(self, parent=None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self.panels: dict[str, SliceView] = {}
        self.titles: dict[str, QLabel] = {}
        first: SliceView | None = None
        for key, title in PANELS:
            cell = QWidget()
            box = QVBoxLayout(cell)
            box.setContentsMargins(0, 0, 0, 0)
            box.setSpacing(1)
            label = QLabel(title)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            view = SliceView(interactive=key == "image")
            for layer in view.layers.values():
                layer.set_outline(False)
            box.addWidget(label)
            box.addWidget(view, 1)
            row, col, span = CELLS[key]
            grid.addWidget(cell, row, col, span, 1)
            view.sliceStepRequested.connect(self.sliceStepRequested)
            view.hovered.connect(self.hovered)
            view.paintRefused.connect(self.paintRefused)
            if first is None:
                first = view
            else:
                view.viewbox.setXLink(first.viewbox)
                view.viewbox.setYLink(first.viewbox)
            self.panels[key] = view
            self.titles[key] = label
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        editable = self.editable
        editable.strokeStarted.connect(self.strokeStarted)
        editable.strokeMoved.connect(self.strokeMoved)
        editable.strokeFinished.connect(self.strokeFinished)

    @property
    def editable(self) -> SliceView:
        """The working panel: the slice with the working mask, where brush and eraser paint."""
        return self.panels["image"]

    def set_image(self, pixels: np.ndarray, levels) -> None:
        for view in self.panels.values():
            view.set_image(pixels, levels)

    def set_levels(self, levels) -> None:
        for view in self.panels.values():
            view.set_levels(levels)

    def set_pixel_aspect(self, aspect: float) -> None:
        for view in self.panels.values():
            view.set_pixel_aspect(aspect)

    def set_masks(self, dataset_mask: np.ndarray | None, ai_mask: np.ndarray | None) -> None:
        """The dataset and AI masks of the slice shown (``(rows, cols)`` uint8 or None), each in its own panel;
        the working panel's mask comes from :meth:`set_working`."""
        for key, view in self.panels.items():
            view.set_layer_mask("dataset", dataset_mask if key == "dataset" else None)
            view.set_layer_mask("ai", ai_mask if key == "ai" else None)
            if key != "image":
                view.set_layer_mask("working", None)

    def set_working(self, mask: np.ndarray | None) -> None:
        """The working mask of the slice shown, ``(rows, cols)`` uint8 0/1 (a read-only view is fine), or None."""
        self.editable.set_layer_mask("working", mask)

    def update_working_region(self, mask: np.ndarray, row0: int, row1: int, col0: int, col1: int) -> None:
        self.editable.update_layer_region("working", mask, row0, row1, col0, col1)

    def set_tool(self, tool: str) -> None:
        for view in self.panels.values():
            view.set_tool(tool)

    def set_brush_radius(self, radius: float) -> None:
        for view in self.panels.values():
            view.set_brush_radius(radius)

    def set_titles(self, dataset_title: str, ai_title: str) -> None:
        self.titles["dataset"].setText(dataset_title)
        self.titles["ai"].setText(ai_title)

    def clear(self) -> None:
        for view in self.panels.values():
            view.clear()

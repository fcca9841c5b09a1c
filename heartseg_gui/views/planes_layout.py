"""The central views in one of three layouts: axial only, the three planes side by side, or a 2 x 2 grid.

``"axial"``: the axial :class:`~heartseg_gui.views.slice_view.SliceView` alone (as before). ``"three"``: axial |
coronal | sagittal. ``"grid"``: axial, coronal / sagittal and the per-slice panel (the area-per-slice plot, lent
by its dock while the grid is shown and handed back after). The layout only places widgets; what they show is the
:class:`~heartseg_gui.controllers.viewer.Viewer`'s business.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from heartseg_gui.views.planes import AXIAL, CORONAL, SAGITTAL
from heartseg_gui.views.slice_view import SliceView

LAYOUTS = ("axial", "three", "grid")


class PlanesLayout(QWidget):
    layoutChanged = Signal(str)

    def __init__(self, axial_view: SliceView, parent: QWidget | None = None):
        super().__init__(parent)
        self.views: dict[str, SliceView] = {AXIAL: axial_view,
                                            CORONAL: SliceView(plane=CORONAL),
                                            SAGITTAL: SliceView(plane=SAGITTAL)}
        axial_view.plane = AXIAL
        self.views[CORONAL].setObjectName("coronalView")
        self.views[SAGITTAL].setObjectName("sagittalView")
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(3)
        self.layout_name = ""
        self._panel: QWidget | None = None
        self._give_back: Callable[[QWidget], None] | None = None
        self.set_layout("axial")

    def lend_panel(self, panel: QWidget, give_back: Callable[[QWidget], None]) -> None:
        """The widget shown in the grid's fourth cell, and how to hand it back when the grid is left."""
        self._panel, self._give_back = panel, give_back

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {name!r}")
        if name == self.layout_name:
            return
        was_grid = self.layout_name == "grid"
        for view in self.views.values():
            self._grid.removeWidget(view)
        if was_grid and self._panel is not None:
            self._grid.removeWidget(self._panel)
            if self._give_back is not None:
                self._give_back(self._panel)
        for r in range(3):
            self._grid.setRowStretch(r, 0)
            self._grid.setColumnStretch(r, 0)
        a, c, s = self.views[AXIAL], self.views[CORONAL], self.views[SAGITTAL]
        if name == "axial":
            self._grid.addWidget(a, 0, 0)
            c.hide()
            s.hide()
        elif name == "three":
            for k, view in enumerate((a, c, s)):
                self._grid.addWidget(view, 0, k)
                self._grid.setColumnStretch(k, 1)
                view.show()
        else:
            self._grid.addWidget(a, 0, 0)
            self._grid.addWidget(c, 0, 1)
            self._grid.addWidget(s, 1, 0)
            for view in (a, c, s):
                view.show()
            if self._panel is not None:
                self._grid.addWidget(self._panel, 1, 1)
                self._panel.show()
            for k in range(2):
                self._grid.setColumnStretch(k, 1)
                self._grid.setRowStretch(k, 1)
        self._grid.setRowStretch(0, 1)
        self._grid.setColumnStretch(0, 1)
        self.layout_name = name
        self.layoutChanged.emit(name)

    @property
    def planes_shown(self) -> bool:
        """Whether the coronal and sagittal views are on screen."""
        return self.layout_name != "axial"

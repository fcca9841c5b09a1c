"""The coronal and sagittal planes and the crosshair that links them to the axial view.

:class:`PlaneViewer` keeps the crosshair point ``(slice, row, col)``: a click or drag in any plane moves it (the
axial slice through :meth:`Controller.set_slice`, so slider and status bar follow), the other planes show the
volume through it. Plane images are numpy views of the volume (:func:`~heartseg_gui.views.planes.plane_of`; for a
big scan's sagittal plane, of its columns-first copy); only the 2-D plane is converted for display. The planes
show the same window/level and layers as the axial view (working, AI, dataset; the AI confidence heat map), with
the aspect ratio of the voxel spacing. Brush and eraser in a plane go to the controller as plane strokes (one
drag = one undo step over every axial slice it touches); while painting only the changed rectangle of each plane is
repainted (the layers: :mod:`heartseg_gui.controllers._plane_layers`).

Zoom and pan are per view; with *link zoom* on (View ▸ Link zoom, remembered in the settings) a zoom or pan in one
view zooms the other two to the same scale in mm per screen pixel, centred on the crosshair. The plane the user last
clicked, painted or scrolled in is the controller's ``active_plane``: Fill between slices works along its axis.

:func:`install_planes` wires it into the main window: View ▸ Layout (axial / three planes / 2 x 2 grid,
remembered in the settings), the crosshair toggle, link zoom, tools, brush radius, levels and layers.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from heartseg_gui import display
from heartseg_gui.controllers._plane_layers import REFORMATTED, PlaneLayersMixin
from heartseg_gui.controllers._zoom_link import ZoomLinkMixin
from heartseg_gui.views.planes import (
    AXIAL,
    CORONAL,
    LETTERS,
    PLANES,
    SAGITTAL,
    ColumnMajorCopy,
    MaskBounds,
    StackRows,
    pixel_aspect,
    plane_axis,
    stack_rows,
)
from heartseg_gui.views.planes_layout import LAYOUTS, PlanesLayout


class PlaneViewer(PlaneLayersMixin, ZoomLinkMixin, QObject):
    pointChanged = Signal(int, int, int)   # slice, row, col of the crosshair
    pixelText = Signal(str)

    def __init__(self, controller, planes: PlanesLayout, viewer, parent: QObject | None = None):
        super().__init__(parent)
        self.c = controller
        self.layout = planes
        self.viewer = viewer
        self.views = planes.views
        self.point = (0, 0, 0)
        self.rows = StackRows.contiguous(1)
        self.bounds: dict[str, MaskBounds] = {}   # working / ai / dataset: where each mask can be non-zero
        self.column_copy: ColumnMajorCopy | None = None   # the open scan's voxels columns first (big scans)
        self.crosshair = True
        self.confidence_visible = False
        self.area_dock = None        # set by install_planes: the dock that lends its plot to the grid,
        self.settings = None         # where the layout is remembered,
        self.layout_actions: dict = {}   # and View ▸ Layout's actions by layout name
        self.fill_action = None      # Slice ▸ Fill between slices, named after the active plane
        for plane in PLANES:
            self.views[plane].viewbox.sigRangeChangedManually.connect(lambda _m, p=plane: self.on_zoomed(p))
        for plane in REFORMATTED:
            view = self.views[plane]
            view.pointPicked.connect(lambda r, c, p=plane: self.pick(p, r, c))
            view.sliceStepRequested.connect(lambda d, p=plane: self.step(p, d))
            view.hovered.connect(lambda r, c, p=plane: self.hover(p, r, c))
            view.windowLevelDragged.connect(viewer.drag_levels)
            view.strokeStarted.connect(lambda r, c, erase, p=plane: self.begin_stroke(p, r, c, erase))
            view.strokeMoved.connect(controller.continue_stroke)
            view.strokeFinished.connect(controller.end_stroke)
        self.views[AXIAL].pointPicked.connect(lambda r, c: self.pick(AXIAL, r, c))
        self.views[AXIAL].strokeStarted.connect(lambda *_: self.set_active(AXIAL))
        self.views[AXIAL].sliceStepRequested.connect(lambda _d: self.set_active(AXIAL))
        planes.layoutChanged.connect(self.on_layout)

    @property
    def shown(self) -> bool:
        return self.layout.planes_shown and self.c.session is not None

    # --- the scan ---------------------------------------------------------------------------------------------
    def on_session(self) -> None:
        s = self.c.session
        if s is None:
            self.column_copy = None
            for plane in REFORMATTED:
                self.views[plane].clear()
            return
        v = s.volume
        self.rows = stack_rows(v)
        self.column_copy = None   # the previous scan's copy goes with it
        self.bounds = {"working": MaskBounds(s.editor.mask), "ai": MaskBounds(s.ai_mask)}
        if s.has_dataset_mask:
            self.bounds["dataset"] = MaskBounds(s.dataset_mask)
        _, rows, cols = v.voxels.shape
        self.point = (self.c.current_slice, rows // 2, cols // 2)
        for plane in PLANES:
            view = self.views[plane]
            view.set_orientation_letters(LETTERS[plane])
            if plane != AXIAL:
                view.set_pixel_aspect(pixel_aspect(v.spacing, plane))
        self.views[AXIAL].set_pixel_aspect(pixel_aspect(v.spacing, AXIAL))
        self._draw_all(reset_zoom=True)

    def geometry_notes(self) -> str:
        """What the status bar says about the stack's geometry ("" when nothing is special)."""
        s = self.c.session
        if s is None:
            return ""
        notes = []
        if s.volume.spacing is None:
            notes.append("spacing unknown (square pixels)")
        if self.rows.has_gaps:
            notes.append(f"slice numbers skip: {self.rows.missing} missing, blank rows in coronal / sagittal")
        return "; ".join(notes)

    def on_layout(self, name: str) -> None:
        on = name != "axial" and self.crosshair
        for view in self.views.values():
            view.set_crosshair_visible(on)
        if name == "axial":
            self.set_active(AXIAL)
        if self.shown:
            self._draw_all(reset_zoom=True)

    def set_active(self, plane: str) -> None:
        """``plane`` is where the user works now: Fill between slices goes along its axis."""
        if not self.layout.planes_shown:
            plane = AXIAL
        self.c.active_plane = plane
        text = "Fill between slices (interpolate)" if plane == AXIAL else f"Fill between {plane} slices (interpolate)"
        if self.fill_action is not None and self.fill_action.text() != text:
            self.fill_action.setText(text)

    def set_layout(self, name: str) -> None:
        """Show layout ``name`` (one of :data:`LAYOUTS`), check its action and remember it in the settings."""
        if name not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {name!r}")
        if name == "grid" and self.area_dock is not None:
            self.area_dock.hide()   # its plot moves into the grid's fourth cell
        self.layout.set_layout(name)
        if name in self.layout_actions:
            self.layout_actions[name].setChecked(True)
        if self.settings is not None:
            self.settings.layout = name

    def set_crosshair(self, on: bool) -> None:
        self.crosshair = bool(on)
        self.on_layout(self.layout.layout_name)

    # --- the point ----------------------------------------------------------------------------------------------
    def pick(self, plane: str, row: float, col: float) -> None:
        """A click / drag at ``(row, col)`` (pixel-centred) of ``plane``'s display image moves the point there."""
        s = self.c.session
        if s is None:
            return
        _, rows, cols = s.volume.voxels.shape
        _, r, c = self.point

        def pixel(x: float, size: int) -> int:
            return int(np.clip(np.floor(x + 0.5), 0, size - 1))

        self.set_active(plane)
        if plane == AXIAL:
            point = (self.c.current_slice, pixel(row, rows), pixel(col, cols))
        elif plane == CORONAL:
            point = (self.rows.slice_at(row), r, pixel(col, cols))
        else:
            point = (self.rows.slice_at(row), pixel(col, rows), c)
        self.move_to(point)

    def move_to(self, point: tuple[int, int, int]) -> None:
        """Put the crosshair on voxel ``point``: the planes through it are redrawn, the axial slice follows."""
        old = self.point
        self.point = tuple(int(v) for v in point)
        if self.shown:
            if self.point[1] != old[1]:
                self._draw(CORONAL)
            if self.point[2] != old[2]:
                self._draw(SAGITTAL)
        if self.point[0] != self.c.current_slice:
            self.c.set_slice(self.point[0])   # -> on_slice
        else:
            self._place_crosshair()
            self._announce()

    def on_slice(self, index: int) -> None:
        """The axial slice changed (slider, keys, wheel, a click in another plane)."""
        self.point = (int(index), self.point[1], self.point[2])
        self._place_crosshair()
        if self.shown:
            self._announce()

    def step(self, plane: str, delta: int) -> None:
        """Wheel in a reformatted view: its own slices (the coronal row, the sagittal column)."""
        s = self.c.session
        if s is None:
            return
        self.set_active(plane)
        axis = plane_axis(plane)
        p = list(self.point)
        p[axis] = int(np.clip(p[axis] + int(delta), 0, s.volume.voxels.shape[axis] - 1))
        self.move_to(tuple(p))

    def _place_crosshair(self) -> None:
        sl, r, c = self.point
        d = int(self.rows.row_of_slice[sl]) if sl < self.rows.row_of_slice.size else sl
        self.views[AXIAL].set_crosshair(r, c)
        self.views[CORONAL].set_crosshair(d, c)
        self.views[SAGITTAL].set_crosshair(d, r)

    def _announce(self) -> None:
        self.pointChanged.emit(*self.point)
        self.pixelText.emit(self.point_text(*self.point))

    def point_text(self, sl: int, row: int, col: int) -> str:
        s = self.c.session
        info = None if s is None else s.pixel_info(sl, row, col)
        if info is None:
            return ""
        text = f"voxel ({sl + 1}, {row}, {col}): {display.format_value(info.value, s.volume.intensity)}"
        if info.position_mm is not None:
            x, y, z = info.position_mm
            text += f"  ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        return text

    def crosshair_text(self) -> str:
        """The status text of the crosshair's voxel where the planes are shown, else ""."""
        return self.point_text(*self.point) if self.shown else ""

    def hover(self, plane: str, row: int, col: int) -> None:
        s = self.c.session
        if s is None or row < 0:
            self.pixelText.emit(self.crosshair_text())
            return
        sl = int(self.rows.slice_of_row[row]) if row < self.rows.n_rows else -1
        if sl < 0:
            self.pixelText.emit("gap: no slice with this number in the stack")
            return
        index = self.point[plane_axis(plane)]
        voxel = (sl, index, col) if plane == CORONAL else (sl, col, index)
        self.pixelText.emit(self.point_text(*voxel))

    # --- drawing ------------------------------------------------------------------------------------------------
    def _draw_all(self, reset_zoom: bool = False) -> None:
        self._place_crosshair()
        if not self.shown:
            return
        voxels = self.c.session.volume.voxels
        if self.column_copy is None and ColumnMajorCopy.wanted(voxels):
            self.column_copy = ColumnMajorCopy(voxels)   # built in the background; read in place until then
        for plane in REFORMATTED:
            self._draw(plane)
            if reset_zoom:
                self.views[plane].reset_zoom()
        if reset_zoom and self.link_zoom:
            self.on_zoomed(AXIAL)

    # --- painting -----------------------------------------------------------------------------------------------
    def begin_stroke(self, plane: str, row: float, col: float, erase: bool) -> None:
        if self.c.session is None:
            return
        self.set_active(plane)
        if self.rows.has_gaps:
            self.c.show_status("This stack skips slice numbers: paint in the axial view (a brush across the gaps "
                               "would join slices that are not neighbours)")
            return
        self.c.begin_plane_stroke(plane, self.point[plane_axis(plane)], row, col, erase,
                                  self.views[plane].brush_radius)


def install_planes(window) -> PlaneViewer:
    """Wire the plane views into ``window`` (a :class:`~heartseg_gui.main_window.MainWindow` with ``planes``,
    ``viewer``, ``actions``, ``layer_panel``, ``tool_panel``, ``area_dock``, ``settings``)."""
    a, planes = window.actions, window.planes
    pv = PlaneViewer(window.controller, planes, window.viewer, window)
    window.viewer.planes = pv
    layout_actions = {"axial": a.layout_axial, "three": a.layout_three, "grid": a.layout_grid}

    def give_back(panel) -> None:
        window.area_dock.setWidget(panel)
        window.area_dock.show()

    planes.lend_panel(window.area_plot, give_back)
    pv.area_dock, pv.settings, pv.layout_actions = window.area_dock, window.settings, layout_actions
    for name, action in layout_actions.items():
        action.triggered.connect(lambda _=False, n=name: pv.set_layout(n))
    a.toggle_crosshair.setChecked(True)
    a.toggle_crosshair.toggled.connect(pv.set_crosshair)
    a.toggle_confidence.toggled.connect(pv.set_confidence_visible)
    a.reset_zoom.triggered.connect(pv.reset_zoom)
    pv.fill_action = a.fill_between
    a.link_zoom.setChecked(window.settings.link_zoom)
    pv.link_zoom = a.link_zoom.isChecked()
    a.link_zoom.toggled.connect(pv.set_link_zoom)
    window.layer_panel.visibilityChanged.connect(
        lambda key, on: [planes.views[p].set_layer_visible(key, on) for p in REFORMATTED])
    window.layer_panel.outlineChanged.connect(
        lambda key, on: [planes.views[p].set_layer_outline(key, on) for p in REFORMATTED])
    window.tool_panel.radiusChanged.connect(
        lambda r: [planes.views[p].set_brush_radius(r) for p in REFORMATTED])
    for p in REFORMATTED:
        planes.views[p].set_brush_radius(window.slice_view.brush_radius)  # the tool panel's radius in pixels
    pv.pixelText.connect(window.status_pixel.setText)
    return pv

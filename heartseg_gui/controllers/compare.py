"""Compare mode's editing: the working panel of :class:`~heartseg_gui.views.compare_view.CompareView` paints
through the controller (so through ``MaskEditor``: one drag = one undo step, the slice marked corrected), shows the
working mask of the slice on screen and repaints only what a stroke changed; a brush press on the dataset or AI
panel says where to paint instead of doing nothing.

:func:`install_compare` wires it into the main window (the viewer keeps showing the image, dataset and AI masks).
"""

from __future__ import annotations

from heartseg_gui.views.slice_view import BRUSH, ERASER, NAVIGATE

PAINT_HERE = ("Compare mode: paint in the working-mask panel (left); the dataset and predicted panels only show "
              "their masks")


def install_compare(window) -> None:
    """Wire ``window.compare_view`` (a :class:`~heartseg_gui.main_window.MainWindow` with ``controller``,
    ``viewer``, ``actions``, ``tool_panel``, ``slice_view``)."""
    c, cv, a = window.controller, window.compare_view, window.actions

    def shown() -> bool:
        return window.viewer.compare_mode and c.session is not None

    def show_working(*_args) -> None:
        if shown():
            cv.set_working(c.session.editor.slice_mask(c.current_slice))

    def on_mask_changed(regions) -> None:
        if not shown():
            return
        i = c.current_slice
        items = regions if isinstance(regions, (list, tuple)) else [regions]
        if regions is None or len(items) > 1:
            cv.set_working(c.session.editor.slice_mask(i))
            return
        for r in items:
            if r is not None and r.slice_index == i:
                cv.update_working_region(c.session.editor.slice_mask(i), r.row0, r.row1, r.col0, r.col1)

    cv.strokeStarted.connect(lambda r, col, erase: c.begin_stroke(r, col, erase, cv.editable.brush_radius))
    cv.strokeMoved.connect(c.continue_stroke)
    cv.strokeFinished.connect(c.end_stroke)
    cv.hovered.connect(c.hover_at)
    cv.paintRefused.connect(lambda: c.show_status(PAINT_HERE))
    def on_toggled(on: bool) -> None:
        if on:
            cv.set_brush_radius(window.tool_panel.radius_px())
            show_working()

    a.compare.toggled.connect(on_toggled)
    c.sliceChanged.connect(show_working)
    c.sessionChanged.connect(show_working)
    c.maskChanged.connect(on_mask_changed)
    for tool, action in ((NAVIGATE, a.tool_navigate), (BRUSH, a.tool_brush), (ERASER, a.tool_eraser)):
        action.toggled.connect(lambda on, t=tool: cv.set_tool(t) if on else None)
    window.tool_panel.radiusChanged.connect(cv.set_brush_radius)

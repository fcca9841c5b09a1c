"""Compare mode is usable (issue 15): its working panel shows the working mask large (two thirds of the width, full
height) and paints through MaskEditor like the axial view (one drag = one undo step, the slice marked corrected);
a brush press on the dataset or AI panel says where to paint instead of doing nothing. On the real window."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.gui import test_gui_window
from tests.gui.test_gui_window import drag, wait_idle

pytestmark = pytest.mark.gui
# the window fixtures of the window tests
make_window, settings_dir, tiny_model = (test_gui_window.make_window, test_gui_window.settings_dir,
                                         test_gui_window.tiny_model)


def disc_line(shape, p0, p1, radius) -> np.ndarray:
    """Pixels within ``radius`` of the segment ``p0``-``p1`` (row, col), drawn in numpy (a superset of the stamps)."""
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    (r0, c0), (r1, c1) = p0, p1
    d = np.array([r1 - r0, c1 - c0], float)
    t = np.clip(((rr - r0) * d[0] + (cc - c0) * d[1]) / max(d @ d, 1e-9), 0, 1)
    return (rr - (r0 + t * d[0])) ** 2 + (cc - (c0 + t * d[1])) ** 2 <= (radius + 1e-6) ** 2


def test_compare_mode_paints_in_its_working_panel(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    w.resize(1400, 900)
    c = w.controller
    e = c.session.editor
    qtbot.keyClick(w.slice_view, Qt.Key.Key_C)
    qtbot.wait(50)
    QApplication.processEvents()
    cv = w.compare_view
    assert w.stack.currentWidget() is cv
    work, ds, ai = cv.panels["image"], cv.panels["dataset"], cv.panels["ai"]
    # the working panel is the big one, and shows the working mask of the slice on screen
    assert work.width() > 1.6 * ds.width() and work.height() > 1.8 * ds.height()
    i = c.current_slice
    assert np.array_equal(work.layers["working"].mask, e.slice_mask(i))
    assert ds.layers["working"].mask is None and ai.layers["working"].mask is None
    # paint with the brush: exactly a stroke on the current slice, one undo step, marked corrected
    before = e.copy_mask()
    steps = e.undo_steps
    qtbot.keyClick(w.slice_view, Qt.Key.Key_B)
    assert work.tool == "brush"
    w.tool_panel.set_radius(3)
    radius = work.brush_radius
    assert radius == pytest.approx(w.tool_panel.radius_px())
    drag(qtbot, work, [(8, 8), (8, 30), (14, 30)])            # top-left corner: outside the heart
    changed = np.argwhere(e.mask != before)
    assert changed.size and np.all(changed[:, 0] == i) and np.all(e.mask[tuple(changed.T)] == 1)
    # within the brush of the drag's lines (+1 px: mouse positions are whole screen pixels)
    allowed = disc_line(before.shape[1:], (8, 8), (8, 30), radius + 1) | disc_line(before.shape[1:], (8, 30),
                                                                                   (14, 30), radius + 1)
    assert allowed[changed[:, 1], changed[:, 2]].all()
    assert e.mask[i, 8, 8:31].all() and e.mask[i, 8:15, 30].all()
    assert e.undo_steps == steps + 1 and e.review_state(i) == "corrected"
    assert np.array_equal(work.layers["working"].mask, e.slice_mask(i))   # repainted on screen
    # the dataset and AI panels never edit: a brush drag there says where to paint
    after = e.copy_mask()
    drag(qtbot, ai, [(40, 40), (40, 60)])
    assert np.array_equal(e.mask, after) and e.undo_steps == steps + 1
    assert "paint in the working-mask panel" in w.statusBar().currentMessage()
    # one Ctrl+Z undoes the stroke, on screen too
    qtbot.keyClick(w.slice_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(e.mask, before)
    assert np.array_equal(work.layers["working"].mask, before[i])
    # another slice: its working mask
    c.step_slice(+5)
    assert np.array_equal(work.layers["working"].mask, e.slice_mask(c.current_slice))
    # back to the layouts
    qtbot.keyClick(w.slice_view, Qt.Key.Key_C)
    assert w.stack.currentWidget() is w.planes

"""The correction tools in the real window offscreen: fill between slices, the threshold-limited brush (range set in
the tool panel or picked under the cursor), brush size in mm with Shift+[ / Shift+], the 3-D clean-up actions,
and a click stamp as quick as a drag."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.metrics import dice  # noqa: E402
from tests.gui.test_gui_window import drag, make_window, settings_dir, tiny_model, wait_idle  # noqa: E402,F401
from tests.helpers import image_to_widget  # noqa: E402

pytestmark = pytest.mark.gui


def _send(view, kind, row, col, button, buttons):
    vp = view.viewport()
    p = image_to_widget(view, row, col)
    QApplication.sendEvent(vp, QMouseEvent(kind, p, QPointF(vp.mapToGlobal(p.toPoint())), button, buttons,
                                           Qt.KeyboardModifier.NoModifier))


def test_fill_between_slices_from_the_menu_is_one_undo_step(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c, e = w.controller, w.controller.session.editor
    original = e.copy_mask()
    heart = np.flatnonzero(original.reshape(e.n_slices, -1).any(axis=1))
    gap = [int(i) for i in heart[len(heart) // 2:len(heart) // 2 + 6:2]]     # three slices, one apart
    e.set_slices(gap, np.zeros((len(gap),) + e.shape[1:], np.uint8), "remove for the test")
    c.set_slice(gap[0])
    w.actions.fill_between.trigger()
    assert e.undo_label == f"Fill between slices ({len(gap)} slices)"
    assert e.interpolated_slices == gap
    assert dice(e.mask[gap].astype(bool), original[gap].astype(bool)) > 0.9
    assert all(e.review_state(i) == "not_reviewed" for i in gap)
    assert f"{len(gap)} slices not reviewed — this slice" == w.measurements.interpolated.text()
    qtbot.keyClick(w.slice_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not e.mask[gap].any() and e.interpolated_slices == []
    assert w.measurements.interpolated.text() == "none"


def test_threshold_brush_paints_only_within_the_range_and_picks_under_the_cursor(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c, s = w.controller, w.controller.session
    c.set_slice(5)                               # no heart here: the working mask is empty
    e = s.editor
    assert not e.slice_mask(5).any()
    panel = w.tool_panel
    panel.low.setValue(-200)
    panel.high.setValue(200)
    w.actions.threshold_brush.setChecked(True)
    assert c.threshold_range == (-200.0, 200.0)
    w.set_tool("brush")
    w.tool_panel.set_radius(30)
    drag(qtbot, w.slice_view, [(100, 60), (100, 140)])
    painted = e.slice_mask(5).astype(bool)
    image = s.volume.voxels[5]
    assert painted.any()
    assert ((image[painted] >= -200) & (image[painted] <= 200)).all()
    inside_brush = np.zeros_like(painted)
    inside_brush[85:115, 70:130] = True
    assert (~painted & inside_brush & ((image < -200) | (image > 200))).any()   # the brush did skip pixels
    assert e.undo_steps >= 1 and e.undo_label == "Brush stroke"
    # pick the range under the cursor: value ± tolerance
    panel.tolerance.setValue(50)
    _send(w.slice_view, QEvent.Type.MouseMove, 40, 50, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: c.hover_pixel == (40, 50), timeout=5000)
    w.actions.pick_threshold.trigger()
    v = float(image[40, 50])
    assert (panel.low.value(), panel.high.value()) == (v - 50, v + 50)
    assert c.threshold_range == (v - 50, v + 50)
    w.actions.threshold_brush.setChecked(False)
    assert c.threshold_range is None


def test_brush_size_is_in_mm_with_big_steps(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    spacing = w.controller.session.volume.spacing[1]         # the sample: 1.5 mm pixels
    panel = w.tool_panel
    panel.set_radius(6)
    assert panel.radius_label.text() == f"6 mm ({6 / spacing:.1f} px)"
    assert w.slice_view.brush_radius == pytest.approx(6 / spacing)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_BracketRight, Qt.KeyboardModifier.ShiftModifier)
    assert panel.radius.value() == 11
    qtbot.keyClick(w.slice_view, Qt.Key.Key_BracketLeft, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_BracketLeft)
    assert panel.radius.value() == 5
    assert w.slice_view.brush_radius == pytest.approx(5 / spacing)


def test_cleanup_actions_are_single_undo_steps(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c, e = w.controller, w.controller.session.editor
    before = e.copy_mask()
    c.set_slice(5)
    c.begin_stroke(20.0, 20.0, False, 2.0)                  # a small island far from the heart
    c.end_stroke()
    island = int(e.area_px(5))
    assert island > 0
    w.tool_panel.island_voxels.setValue(island + 1)
    steps = e.undo_steps
    w.actions.remove_islands.trigger()
    assert e.undo_steps == steps + 1 and not e.slice_mask(5).any()
    assert np.array_equal(e.mask, before)
    c.begin_stroke(20.0, 20.0, False, 2.0)
    c.end_stroke()
    w.actions.keep_largest_3d.trigger()
    assert e.undo_label == "Keep largest 3-D region" and np.array_equal(e.mask, before)
    w.tool_panel.cleanup_radius.setValue(3.0)
    w.actions.smooth_mask.trigger()
    assert e.undo_label == "Smooth (3 mm)"
    assert dice(e.mask.astype(bool), before.astype(bool)) > 0.95
    e.undo()
    assert np.array_equal(e.mask, before)


def test_a_click_stamp_is_as_quick_as_a_drag(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    w.resize(1400, 900)
    c = w.controller
    c.set_slice(5)                                           # empty: every click changes pixels
    w.set_tool("brush")
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    view = w.slice_view

    def click(row, col):
        t = time.perf_counter()
        _send(view, QEvent.Type.MouseButtonPress, row, col, left, left)
        _send(view, QEvent.Type.MouseButtonRelease, row, col, left, none)
        QApplication.processEvents()
        return time.perf_counter() - t

    for k in range(3):
        click(100, 100 + k)
    steps = c.session.editor.undo_steps
    clicks = [click(20 + 7 * k, 40) for k in range(12)]
    assert c.session.editor.undo_steps == steps + 12          # every click is a stamp and one undo step
    assert statistics.median(clicks) < 0.06, [round(t * 1000) for t in clicks]

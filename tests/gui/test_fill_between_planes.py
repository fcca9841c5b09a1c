"""Slice ▸ Fill between slices in the plane the user works in (issue 15), on the real window offscreen: after a
click in the sagittal view the action fills between sagittal slices (one undo step through MaskEditor, axial
slices it changed marked corrected, in the journal, shown in every view); in the axial-only layout it is axial."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt

from core.metrics import dice
from tests.gui import test_gui_window
from tests.gui.test_gui_window import wait_idle
from tests.gui.test_three_planes import click, three_planes

pytestmark = pytest.mark.gui
# the window fixtures of the window tests
make_window, settings_dir, tiny_model = (test_gui_window.make_window, test_gui_window.settings_dir,
                                         test_gui_window.tiny_model)


def test_fill_between_sagittal_slices_from_the_window(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c = w.controller
    e = c.session.editor
    truth = e.copy_mask()
    cols = np.flatnonzero(truth.any(axis=(0, 1)))
    removed = [int(i) for i in np.arange(cols[0] + 2, cols[-1] - 1)[1::2]]
    damaged = truth.copy()
    damaged[:, :, removed] = 0
    e.set_slices(None, damaged, "test: keep every other sagittal slice")
    c.edited_elsewhere([])
    views = three_planes(qtbot, w)
    assert w.actions.fill_between.text() == "Fill between slices (interpolate)"
    # a click in the sagittal view makes it the plane Fill between works in
    sl = c.current_slice
    click(qtbot, views["sagittal"], sl, 50)
    assert c.active_plane == "sagittal" and "sagittal" in w.actions.fill_between.text()
    steps = e.undo_steps
    w.actions.fill_between.trigger()
    assert e.undo_steps == steps + 1 and "sagittal" in w.actions.undo.text()
    score = dice(e.mask[:, :, removed].astype(bool), truth[:, :, removed].astype(bool))
    assert score > 0.95
    assert "Fill between sagittal slices" in w.statusBar().currentMessage()
    changed = [s for s in range(e.n_slices) if not np.array_equal(e.mask[s], damaged[s])]
    assert changed and all(e.review_state(s) == "corrected" for s in changed)
    assert set(changed) <= e.changed_slices and e.journal_payload()["slices"]
    # every view shows the filled mask
    col = w.plane_viewer.point[2]
    assert np.array_equal(views["sagittal"].layers["working"].mask, e.mask[:, :, col])
    assert np.array_equal(views["axial"].layers["working"].mask, e.slice_mask(c.current_slice))
    # one Ctrl+Z takes the whole fill back
    qtbot.keyClick(views["axial"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(e.mask, damaged) and e.undo_steps == steps
    # a click in the coronal view: the fill goes along coronal slices (here nothing to fill: every coronal slice
    # through the heart still holds mask, so the status bar says so and there is no step)
    click(qtbot, views["coronal"], sl, 50)
    assert c.active_plane == "coronal"
    w.actions.fill_between.trigger()
    assert e.undo_steps == steps and "nothing to fill" in w.statusBar().currentMessage()
    # axial only: Fill between is axial again
    w.actions.layout_axial.trigger()
    assert c.active_plane == "axial" and w.actions.fill_between.text() == "Fill between slices (interpolate)"

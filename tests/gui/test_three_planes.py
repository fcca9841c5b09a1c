"""Three planes and a crosshair (issue 14), on the real window offscreen: layouts, clicks in each plane moving the
others, painting in coronal (exact voxels, one undo step), aspect ratio from spacing, gaps of a non-contiguous
Kaggle stack, and ``heartseg open --layout three --screenshot`` in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core import resources  # noqa: E402
from heartseg_gui.views.planes import pixel_aspect  # noqa: E402
from tests.gui.test_gui_window import _mouse, drag, make_window, settings_dir, tiny_model, wait_idle  # noqa: E402,F401
from tests.helpers import image_to_widget, sample_kaggle_patient  # noqa: E402

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


def click(qtbot, view, row: float, col: float) -> None:
    """A real left click on image position ``(row, col)`` of a plane view."""
    vp = view.viewport()
    p = image_to_widget(view, row, col)
    _mouse(vp, QEvent.Type.MouseButtonPress, p, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    qtbot.wait(10)
    _mouse(vp, QEvent.Type.MouseButtonRelease, p, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    qtbot.wait(10)


def wheel(view, steps: int) -> None:
    """A real wheel event over the middle of the view (positive: away from the user)."""
    vp = view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)


def three_planes(qtbot, w):
    w.actions.layout_three.trigger()
    w.resize(1500, 900)
    qtbot.wait(50)
    QApplication.processEvents()
    return w.planes.views


def shown_image(view) -> np.ndarray:
    return np.asarray(view.image_item.image)


def test_click_in_each_plane_moves_the_others(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c, v = w.controller, w.controller.session.volume.voxels
    views = three_planes(qtbot, w)
    assert w.planes.layout_name == "three" and all(views[p].isVisible() for p in views)
    pv = w.plane_viewer
    # axial click: the coronal plane shows that row, the sagittal that column; the axial slice stays
    start = c.current_slice
    click(qtbot, views["axial"], 30, 40)
    assert pv.point == (start, 30, 40)
    assert np.array_equal(shown_image(views["coronal"]), v[:, 30, :].astype(np.float32))
    assert np.array_equal(shown_image(views["sagittal"]), v[:, :, 40].astype(np.float32))
    assert views["coronal"].crosshair == (start, 40) and views["sagittal"].crosshair == (start, 30)
    # coronal click: the axial slice (slider too) and the sagittal column follow
    click(qtbot, views["coronal"], 20, 50)
    assert c.current_slice == 20 and w.slider.value() == 20 and pv.point == (20, 30, 50)
    assert np.array_equal(shown_image(views["axial"]), v[20].astype(np.float32))
    assert np.array_equal(shown_image(views["sagittal"]), v[:, :, 50].astype(np.float32))
    assert views["axial"].crosshair == (30, 50)
    # sagittal click: slice and coronal row follow; the status bar names the voxel, its value and mm
    click(qtbot, views["sagittal"], 70, 60)
    assert c.current_slice == 70 and pv.point == (70, 60, 50)
    assert np.array_equal(shown_image(views["coronal"]), v[:, 60, :].astype(np.float32))
    text = w.status_pixel.text()
    assert text.startswith(f"voxel (71, 60, 50): {v[70, 60, 50]:.0f} HU") and text.endswith("mm")
    assert w.status_slice.text().startswith("Slice 71 / ")
    # the wheel in a reformatted view moves through its own slices
    wheel(views["coronal"], -1)
    assert pv.point == (70, 61, 50)
    assert np.array_equal(shown_image(views["coronal"]), v[:, 61, :].astype(np.float32))
    # the crosshair key: off, a click pans instead of moving the point
    qtbot.keyClick(views["axial"], Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)
    assert not w.actions.toggle_crosshair.isChecked() and not views["coronal"].cross_h.isVisible()
    click(qtbot, views["coronal"], 10, 10)
    assert pv.point == (70, 61, 50)


def test_paint_in_coronal_exact_voxels_and_one_undo(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c = w.controller
    e = c.session.editor
    views = three_planes(qtbot, w)
    click(qtbot, views["axial"], 90, 10)          # coronal row 90: posterior, outside the heart
    r = w.plane_viewer.point[1]
    assert r == 90
    before = e.copy_mask()
    steps = e.undo_steps
    qtbot.keyClick(views["axial"], Qt.Key.Key_B)
    # a one-pixel brush dragged down the coronal plane at column 10, from slice 40 to slice 60
    w.tool_panel.set_radius(1)
    views["coronal"].set_brush_radius(0.5)
    drag(qtbot, views["coronal"], [(40, 10), (47, 10), (53, 10), (60, 10)])
    expected = before.copy()
    expected[40:61, r, 10] = 1                    # the reference, drawn in numpy
    assert np.array_equal(e.mask, expected)
    assert e.undo_steps == steps + 1 and "coronal" in w.actions.undo.text()
    assert all(e.review_state(s) == "corrected" for s in range(40, 61))
    assert e.review_state(39) == "not_reviewed" and e.review_state(61) == "not_reviewed"
    assert set(range(40, 61)) <= e.changed_slices and c.session.editor.journal_payload()["slices"]
    # the views show it: the coronal working layer, and the axial slice on screen
    assert np.array_equal(views["coronal"].layers["working"].mask, e.mask[:, r, :])
    # a wider brush: every changed voxel lies on coronal row r, within the brush of the drag's line
    views["coronal"].set_brush_radius(3)
    drag(qtbot, views["coronal"], [(20, 30), (20, 45), (21, 60)])
    changed = np.argwhere(e.mask != expected)
    assert changed.size and np.all(changed[:, 1] == r)
    s_idx, c_idx = changed[:, 0], changed[:, 2]
    assert s_idx.min() >= 20 - 3 and s_idx.max() <= 21 + 3 and c_idx.min() >= 30 - 3 and c_idx.max() <= 60 + 3
    assert e.mask[20, r, 30:61].all()
    # one Ctrl+Z per drag, across planes
    qtbot.keyClick(views["axial"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(e.mask, expected)
    qtbot.keyClick(views["axial"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(e.mask, before) and e.undo_steps == steps
    assert e.review_state(50) == "not_reviewed"
    assert np.array_equal(views["coronal"].layers["working"].mask, before[:, r, :])


def test_sagittal_eraser_edits_the_same_mask(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    e = w.controller.session.editor
    views = three_planes(qtbot, w)
    # a column through the heart: find a sagittal position with mask on the current slice
    sl = w.controller.current_slice
    rr, cc = np.argwhere(e.slice_mask(sl)).mean(axis=0).astype(int)
    click(qtbot, views["axial"], rr, cc)
    assert e.mask[sl, rr, cc] == 1
    before = e.copy_mask()
    qtbot.keyClick(views["axial"], Qt.Key.Key_E)
    views["sagittal"].set_brush_radius(2)
    drag(qtbot, views["sagittal"], [(sl, rr), (sl, rr + 4)])
    changed = np.argwhere(e.mask != before)
    assert changed.size and np.all(changed[:, 2] == cc) and np.all(e.mask[tuple(changed.T)] == 0)
    assert e.mask[sl, rr:rr + 5, cc].sum() == 0
    # the axial view on screen shows the erased pixels
    assert np.array_equal(views["axial"].layers["working"].mask, e.slice_mask(sl))


def test_aspect_ratio_from_spacing(qtbot, make_window, tmp_path):
    import nibabel as nib

    # the sample re-written as a real NIfTI with 2.5 mm slices and 0.7 x 0.9 mm pixels (RAS axes)
    img = nib.load(str(resources.sample_scan_path()))
    scan = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), np.diag([0.9, 0.7, 2.5, 1.0])), str(scan))
    w = make_window(scan)
    wait_idle(qtbot, w)
    spacing = w.controller.session.volume.spacing
    assert spacing == pytest.approx((2.5, 0.7, 0.9))
    views = three_planes(qtbot, w)
    for plane, view in views.items():
        a = view.viewbox.mapViewToScene(QPointF(0, 0))
        b = view.viewbox.mapViewToScene(QPointF(1, 1))
        on_screen = (b.x() - a.x()) / (b.y() - a.y())
        assert on_screen == pytest.approx(pixel_aspect(spacing, plane), rel=1e-3), plane
    # coronal: one slice is spacing[0] mm high, one column spacing[2] mm wide
    assert pixel_aspect(spacing, "coronal") == pytest.approx(spacing[2] / spacing[0])
    assert [views["coronal"].letters[k].text() for k in ("top", "bottom", "left", "right")] == ["S", "I", "R", "L"]
    assert [views["sagittal"].letters[k].text() for k in ("top", "bottom", "left", "right")] == ["S", "I", "A", "P"]
    assert "spacing unknown" not in w.status_slice.text()


def test_kaggle_png_square_pixels_and_gaps(qtbot, make_window, tmp_path):
    patient = tmp_path / "p1"
    shutil.copytree(sample_kaggle_patient(), patient)
    missing = ["1-050", "1-051", "1-052", "1-080"]
    for stem in missing:
        (patient / "image" / f"{stem}.png").unlink()
        (patient / "mask" / f"{stem}.png").unlink(missing_ok=True)
    w = make_window(patient)
    wait_idle(qtbot, w)
    s = w.controller.session
    assert s.volume.spacing is None and s.n_slices == 108
    views = three_planes(qtbot, w)
    for view in views.values():
        a, b = view.viewbox.mapViewToScene(QPointF(0, 0)), view.viewbox.mapViewToScene(QPointF(1, 1))
        assert (b.x() - a.x()) / (b.y() - a.y()) == pytest.approx(1.0, rel=1e-3)
    text = w.status_slice.text()
    assert "spacing unknown" in text and "slice numbers skip: 4 missing" in text
    # coronal / sagittal: one display row per slice number, blank (NaN) rows where a number is missing
    pv = w.plane_viewer
    image = shown_image(views["coronal"])
    assert image.shape == (112, s.volume.voxels.shape[2])
    gap_rows = [int(m.split("-")[1]) - 1 for m in missing]
    assert np.isnan(image[gap_rows]).all()
    present = [r for r in range(112) if r not in gap_rows]
    assert np.array_equal(image[present], s.volume.voxels[:, pv.point[1], :].astype(np.float32))
    assert not views["coronal"].layers["working"].mask[gap_rows].any()
    # a click on a gap row goes to the nearest slice that exists
    click(qtbot, views["coronal"], 79, 10)
    assert s.volume.slice_names[w.controller.current_slice] in ("1-079", "1-081")
    # painting across gaps is refused (the rows are not neighbours): nothing changes
    before = s.editor.copy_mask()
    qtbot.keyClick(views["axial"], Qt.Key.Key_B)
    drag(qtbot, views["coronal"], [(40, 10), (60, 10)])
    assert np.array_equal(s.editor.mask, before)


def test_layout_actions_grid_and_remembered(qtbot, make_window, settings_dir):
    w = make_window()
    wait_idle(qtbot, w)
    w.actions.layout_grid.trigger()
    qtbot.wait(20)
    assert w.planes.layout_name == "grid"
    assert w.area_plot.parent() is w.planes and not w.area_dock.isVisible()
    assert w.settings.layout == "grid"
    w.actions.layout_axial.trigger()
    assert w.area_dock.widget() is w.area_plot and not w.planes.views["coronal"].isVisible()
    w.actions.layout_three.trigger()
    w.save_settings()
    w2 = make_window(sample=False)
    assert w2.planes.layout_name == "three" and w2.actions.layout_three.isChecked()


def test_open_layout_three_screenshot_subprocess(tmp_path, tiny_model):
    from tests.gui.test_gui_launcher import _env

    shot = tmp_path / "three.png"
    env = _env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "open", "--layout", "three", "--model",
                           str(tiny_model), "--screenshot", str(shot)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] >= 900 and img.std() > 10
    ini = (Path(env["HEARTSEG_SETTINGS_DIR"]) / "heartseg.ini").read_text()
    assert "layout=three" in ini
    bad = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "open", "--layout", "four"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--layout" in bad.stderr

"""View ▸ Link zoom (issue 14), on the real window offscreen: with it on, a zoom (Ctrl+wheel) or pan in one plane
brings the other two to the same scale in mm per screen pixel, centred on the crosshair; off, zoom stays per view;
the choice is remembered in the settings."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from core import resources
from tests.gui import test_gui_window
from tests.gui.test_gui_window import drag, wait_idle
from tests.gui.test_three_planes import click, three_planes

pytestmark = pytest.mark.gui
# the window fixtures of the window tests
make_window, settings_dir, tiny_model = (test_gui_window.make_window, test_gui_window.settings_dir,
                                         test_gui_window.tiny_model)


def ctrl_wheel(view, steps: int) -> None:
    """A real Ctrl+wheel event over the middle of the view (zoom in for positive ``steps``)."""
    vp = view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase,
                     False)
    QApplication.sendEvent(vp, ev)


def ranges(view):
    (x0, x1), (y0, y1) = view.viewbox.viewRange()
    return x0, x1, y0, y1


def mm_per_pixel(view, col_mm: float) -> float:
    x0, x1, _, _ = ranges(view)
    return (x1 - x0) * col_mm / view.viewbox.width()


@pytest.fixture
def thick_scan(tmp_path):
    """The sample as a NIfTI with 2.5 mm slices and 0.7 x 0.9 mm pixels: pixel counts and mm differ per plane."""
    import nibabel as nib

    img = nib.load(str(resources.sample_scan_path()))
    scan = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), np.diag([0.9, 0.7, 2.5, 1.0])), str(scan))
    return scan


def test_zoom_stays_per_view_without_link(qtbot, make_window, thick_scan):
    w = make_window(thick_scan)
    wait_idle(qtbot, w)
    views = three_planes(qtbot, w)
    assert not w.actions.link_zoom.isChecked() and not w.settings.link_zoom
    before = {p: ranges(v) for p, v in views.items()}
    ctrl_wheel(views["axial"], 3)
    qtbot.wait(20)
    assert ranges(views["axial"])[1] - ranges(views["axial"])[0] < before["axial"][1] - before["axial"][0]
    assert ranges(views["coronal"]) == pytest.approx(before["coronal"])
    assert ranges(views["sagittal"]) == pytest.approx(before["sagittal"])


def test_link_zoom_gives_every_plane_the_same_mm_scale_around_the_crosshair(qtbot, make_window, thick_scan,
                                                                           settings_dir):
    w = make_window(thick_scan)
    wait_idle(qtbot, w)
    views = three_planes(qtbot, w)
    pv = w.plane_viewer
    spacing = w.controller.session.volume.spacing               # (slice 2.5, row 0.7, col 0.9) mm
    col_mm = {"axial": spacing[2], "coronal": spacing[2], "sagittal": spacing[1]}
    click(qtbot, views["axial"], 40, 70)                        # the crosshair off the centre
    w.actions.link_zoom.trigger()
    assert pv.link_zoom and w.settings.link_zoom
    # turning it on already aligns the scales (to the plane clicked last: axial)
    scale = mm_per_pixel(views["axial"], col_mm["axial"])
    for plane in ("coronal", "sagittal"):
        assert mm_per_pixel(views[plane], col_mm[plane]) == pytest.approx(scale, rel=1e-3), plane
    ctrl_wheel(views["axial"], 4)
    qtbot.wait(20)
    zoomed = mm_per_pixel(views["axial"], col_mm["axial"])
    assert zoomed < 0.8 * scale
    point = pv.point
    for plane in ("coronal", "sagittal"):
        view = views[plane]
        assert mm_per_pixel(view, col_mm[plane]) == pytest.approx(zoomed, rel=1e-3), plane
        # vertical scale too: one screen pixel spans the same mm along the slice axis (2.5 mm rows)
        _, _, y0, y1 = ranges(view)
        assert (y1 - y0) * spacing[0] / view.viewbox.height() == pytest.approx(zoomed, rel=1e-2), plane
        row, col = view.crosshair
        x0, x1, y0, y1 = ranges(view)
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((col + 0.5, row + 0.5), abs=0.01), plane
    assert views["coronal"].crosshair == (point[0], point[2]) and views["sagittal"].crosshair == (point[0], point[1])
    # zoom out in the sagittal view: the axial and coronal views follow
    ctrl_wheel(views["sagittal"], -2)
    qtbot.wait(20)
    out = mm_per_pixel(views["sagittal"], col_mm["sagittal"])
    assert out > zoomed
    for plane in ("axial", "coronal"):
        assert mm_per_pixel(views[plane], col_mm[plane]) == pytest.approx(out, rel=1e-3), plane
    # a pan (middle drag) in the coronal view keeps the scale and re-centres the others on the crosshair
    before = ranges(views["coronal"])
    s0, _, c0 = pv.point                                        # (a point inside the zoomed coronal view)
    drag(qtbot, views["coronal"], [(s0, c0), (s0 + 3, c0 + 6)], button=Qt.MouseButton.MiddleButton)
    qtbot.wait(20)
    assert ranges(views["coronal"]) != pytest.approx(before)    # it panned
    for plane in ("axial", "sagittal"):
        view = views[plane]
        assert mm_per_pixel(view, col_mm[plane]) == pytest.approx(out, rel=1e-3), plane
        row, col = view.crosshair
        x0, x1, y0, y1 = ranges(view)
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((col + 0.5, row + 0.5), abs=0.01), plane
    # remembered: a new window starts with link zoom on
    w.save_settings()
    w2 = make_window(sample=False)
    assert w2.actions.link_zoom.isChecked() and w2.plane_viewer.link_zoom
    # and off again
    w.actions.link_zoom.trigger()
    assert not w.settings.link_zoom
    before = ranges(views["coronal"])
    ctrl_wheel(views["axial"], 2)
    qtbot.wait(20)
    assert ranges(views["coronal"]) == pytest.approx(before)


def test_reset_zoom_with_link_on_shows_the_axial_scale_everywhere(qtbot, make_window, thick_scan):
    w = make_window(thick_scan)
    wait_idle(qtbot, w)
    views = three_planes(qtbot, w)
    spacing = w.controller.session.volume.spacing
    w.actions.link_zoom.trigger()
    ctrl_wheel(views["coronal"], 5)
    qtbot.wait(20)
    w.actions.reset_zoom.trigger()
    qtbot.wait(20)
    rows, cols = w.controller.session.volume.voxels.shape[1:]
    x0, x1, y0, y1 = ranges(views["axial"])
    assert x0 <= 0 and x1 >= cols and y0 <= 0 and y1 >= rows      # the axial view shows its whole slice again
    scale = mm_per_pixel(views["axial"], spacing[2])
    assert mm_per_pixel(views["coronal"], spacing[2]) == pytest.approx(scale, rel=1e-3)
    assert mm_per_pixel(views["sagittal"], spacing[1]) == pytest.approx(scale, rel=1e-3)

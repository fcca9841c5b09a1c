"""The annotator window, driven offscreen with pytest-qt: open, predict, paint, undo, navigate, save, export,
cancel. A tiny U-Net (built here) stands in for the bundled model so the run stays fast."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core import resources  # noqa: E402
from tests.helpers import image_to_widget, patient_ids, sample_kaggle_patient  # noqa: E402

pytestmark = pytest.mark.gui

WAIT_MS = 90_000


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from core.model.unet import build_unet, save_model

    path = tmp_path_factory.mktemp("model") / "tiny_unet.keras"
    save_model(build_unet(image_size=64, filters=(4, 8, 8, 8, 8), bottleneck=8), path)
    return path


@pytest.fixture
def settings_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "settings"
    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(folder))
    return folder


@pytest.fixture
def make_window(qtbot, settings_dir, tiny_model):
    """``make_window(path=None, mask=None, model=tiny)``: the real window; questions answered 'discard'."""
    from heartseg_gui.app import create_window

    made = []

    def make(path=None, mask=None, model=tiny_model, sample=True):
        w = create_window(path, mask, model, sample_when_empty=sample)
        qtbot.addWidget(w)
        w.prompts.save_discard_cancel = lambda question: "discard"
        made.append(w)
        return w

    yield make
    for w in made:
        w.controller.shutdown()


def wait_predicted(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.controller.session is not None and w.controller.session.prediction_complete
                    and not w.controller.is_busy(), timeout=WAIT_MS)


def wait_idle(qtbot, w) -> None:
    qtbot.waitUntil(lambda: not w.controller.is_busy(), timeout=WAIT_MS)


def _mouse(widget, kind, pos: QPointF, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier):
    global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
    ev = QMouseEvent(kind, pos, global_pos, button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def drag(qtbot, view, points, modifiers=Qt.KeyboardModifier.NoModifier, button=Qt.MouseButton.LeftButton):
    """A real mouse drag over the slice view through image positions ``points`` [(row, col), ...]."""
    vp = view.viewport()
    pts = [image_to_widget(view, r, c) for r, c in points]
    _mouse(vp, QEvent.Type.MouseButtonPress, pts[0], button, button, modifiers)
    for p in pts[1:]:
        qtbot.wait(25)  # pyqtgraph rate-limits mouse moves
        _mouse(vp, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button, modifiers)
    qtbot.wait(25)
    _mouse(vp, QEvent.Type.MouseButtonRelease, pts[-1], button, Qt.MouseButton.NoButton, modifiers)


def key(qtbot, w, k, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(w.slice_view, k, modifier)


def test_opens_sample_with_prediction_and_measurements(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    s = w.controller.session
    assert s.volume.kind == "nifti" and s.has_dataset_mask
    assert w.status_model.text().startswith("Model: tiny_unet.keras (OpenVINO ")
    i = w.controller.current_slice
    layer = w.slice_view.layers["ai"]
    assert layer.mask is not None and np.array_equal(layer.mask, s.ai_mask[i])
    # working mask starts as the dataset's mask, on screen as a copy
    assert np.array_equal(w.slice_view.layers["working"].mask, s.volume.mask[i])
    # explicit levels (mediastinum in HU), float32 C-contiguous image, never auto-levelled
    img = w.slice_view.image_item.image
    assert img.dtype == np.float32 and img.flags.c_contiguous
    assert tuple(w.slice_view.image_item.levels) == (-135.0, 215.0)
    w.viewer.update_measurements()
    assert "mm²" in w.measurements.area.text()
    assert "mL" in w.measurements.volume.text()
    assert w.measurements.dice_scan.text() != "—"
    # hover: pixel value in HU and world position in mm
    w.viewer.on_hover(10, 20)
    assert "HU" in w.status_pixel.text() and "mm" in w.status_pixel.text()


def test_paint_stroke_undo_redo_with_mouse(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c = w.controller
    c.set_slice(5)  # a slice without heart: the working mask is empty there
    editor = c.session.editor
    assert editor.area_px(5) == 0
    key(qtbot, w, Qt.Key.Key_B)
    assert w.slice_view.tool == "brush"
    w.tool_panel.set_radius(3)
    layer = w.slice_view.layers["working"]
    before = layer.repaint_count
    drag(qtbot, w.slice_view, [(30, 20), (30, 40), (30, 60), (31, 80)])
    assert editor.area_px(5) > 0
    assert not editor.stroke_active
    # the stroke is continuous (stamps interpolated): every column from 20 to 80 painted on row 30
    assert editor.slice_mask(5)[30, 20:81].all()
    # the view repainted only changed regions and shows exactly the editor's slice
    assert layer.repaint_count > before
    assert layer.last_repaint.width() < 30 and layer.last_repaint.height() < 30
    assert np.array_equal(layer.mask, editor.slice_mask(5))
    assert editor.review_state(5) == "corrected"
    assert "Brush stroke" in w.actions.undo.text()
    assert w.windowTitle().startswith(c.session.volume.name + "*")
    # one drag = one undo step
    key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert editor.area_px(5) == 0 and np.array_equal(layer.mask, editor.slice_mask(5))
    assert "Brush stroke" in w.actions.redo.text()
    key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert editor.area_px(5) > 0
    # Shift held erases with the brush
    drag(qtbot, w.slice_view, [(30, 10), (30, 50)], modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert not editor.slice_mask(5)[30, 25:45].any()
    assert editor.slice_mask(5)[30, 60:81].all()
    # undo survives a slice change and brings the view back to the edited slice
    key(qtbot, w, Qt.Key.Key_Down)
    assert c.current_slice == 6
    c.undo()
    assert c.current_slice == 5 and editor.slice_mask(5)[30, 20:81].all()


def test_stroke_intents_and_slice_tools(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    c, v = w.controller, w.slice_view
    c.set_slice(60)
    editor = c.session.editor
    # the view's intent signals drive the same path as the mouse
    w.set_tool("eraser")
    v.strokeStarted.emit(50.0, 50.0, True)
    v.strokeMoved.emit(50.0, 70.0)
    v.strokeFinished.emit()
    assert "Eraser stroke" in w.actions.undo.text()
    w.actions.accept_ai_slice.trigger()
    assert np.array_equal(editor.slice_mask(60), c.session.ai_mask[60])
    assert editor.review_state(60) == "accepted"
    assert "Accept AI" in w.actions.undo.text()
    w.actions.clear_slice.trigger()
    assert editor.area_px(60) == 0
    w.actions.copy_previous.trigger()
    assert np.array_equal(editor.slice_mask(60), editor.slice_mask(59))
    w.actions.fill_holes.trigger()
    w.actions.keep_largest.trigger()
    asked = []  # Shift+I asks before overwriting hand corrections (issue 15); here: overwrite them too
    w.prompts.keep_overwrite_cancel = lambda n: asked.append(n) or "overwrite"
    w.actions.accept_ai_all.trigger()
    assert asked and asked[0] >= 1
    assert np.array_equal(editor.mask, c.session.ai_mask)
    w.actions.undo.trigger()
    assert not np.array_equal(editor.mask, c.session.ai_mask)


def test_navigation_keys_wheel_slider_and_review(qtbot, make_window):
    w = make_window(model=Path("/nonexistent/model.keras"))
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    c = w.controller
    assert any("model file not found" in m for _t, m in w.prompts.errors)
    boxes = w.prompts.open_error_boxes()
    assert boxes and "Load Model" in boxes[0].text()
    for box in boxes:  # the error box is window-modal: dismiss it like the user would
        box.accept()
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    n = c.session.n_slices
    key(qtbot, w, Qt.Key.Key_Home)
    assert c.current_slice == 0 and w.slider.value() == 0
    key(qtbot, w, Qt.Key.Key_PageDown)
    assert c.current_slice == 10
    key(qtbot, w, Qt.Key.Key_Up)
    assert c.current_slice == 9
    key(qtbot, w, Qt.Key.Key_End)
    assert c.current_slice == n - 1
    w.slider.setValue(3)
    assert c.current_slice == 3
    w.slice_view.sliceStepRequested.emit(+1)   # what a wheel step down emits
    assert c.current_slice == 4
    assert "Slice 5 / 112" in w.status_slice.text()
    # review: A accepts and jumps to the next slice not reviewed; X flags; N finds the next not reviewed
    key(qtbot, w, Qt.Key.Key_A)
    assert c.session.editor.review_state(4) == "accepted" and c.current_slice == 5
    key(qtbot, w, Qt.Key.Key_X)
    assert c.session.editor.review_state(5) == "flagged"
    c.set_slice(3)
    key(qtbot, w, Qt.Key.Key_N)
    assert c.current_slice == 6
    for i in range(6, n):  # everything after slice 4 reviewed: N wraps round to the first slice not reviewed
        c.session.editor.set_review_state(i, "accepted")
    c.set_slice(n - 1)
    key(qtbot, w, Qt.Key.Key_N)
    assert c.current_slice == 0


def test_layers_compare_and_window_level(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    v = w.slice_view
    key(qtbot, w, Qt.Key.Key_P)
    assert not v.layers["ai"].isVisible() and not w.layer_panel.checks["ai"].isChecked()
    key(qtbot, w, Qt.Key.Key_P)
    assert v.layers["ai"].isVisible()
    key(qtbot, w, Qt.Key.Key_O)
    assert not v.layers["dataset"].isVisible()
    key(qtbot, w, Qt.Key.Key_F)
    assert all(layer.outline_mode for layer in v.layers.values())
    w.layer_panel.opacity.setValue(30)
    assert abs(v.layers["working"].opacity() - 0.30) < 1e-6
    # presets: 2 = lung, 4 = the Kaggle scale
    key(qtbot, w, Qt.Key.Key_2)
    assert tuple(v.image_item.levels) == (-1350.0, 150.0)
    key(qtbot, w, Qt.Key.Key_4)
    assert v.image_item.levels[0] == -1024.0
    before = tuple(w.viewer.levels)
    v.windowLevelDragged.emit(40.0, 10.0)
    assert tuple(w.viewer.levels) != before
    # levels stay fixed across slices (no auto-levels)
    levels = tuple(v.image_item.levels)
    w.controller.step_slice(+7)
    assert tuple(v.image_item.levels) == levels
    # compare mode: image | dataset mask | predicted mask
    key(qtbot, w, Qt.Key.Key_C)
    assert w.stack.currentWidget() is w.compare_view
    i = w.controller.current_slice
    panels = w.compare_view.panels
    assert panels["image"].layers["dataset"].mask is None
    assert np.array_equal(panels["dataset"].layers["dataset"].mask, w.controller.session.volume.mask[i])
    assert np.array_equal(panels["ai"].layers["ai"].mask, w.controller.session.ai_mask[i])
    key(qtbot, w, Qt.Key.Key_C)
    assert w.stack.currentWidget() is w.planes  # the layout holding the axial view


def _kaggle_copy(tmp_path) -> Path:
    root = tmp_path / "dataset"
    shutil.copytree(sample_kaggle_patient(), root / "ts_pulm")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def test_save_back_into_kaggle_dataset(qtbot, make_window, tmp_path):
    import cv2

    root = _kaggle_copy(tmp_path)
    patient = root / "ts_pulm"
    images_before = {p.name: p.read_bytes() for p in (patient / "image").iterdir()}
    w = make_window(patient)
    wait_predicted(qtbot, w)
    c = w.controller
    assert c.session.volume.kind == "kaggle_patient"
    c.set_slice(4)
    w.set_tool("brush")
    drag(qtbot, w.slice_view, [(40, 30), (40, 60)])
    c.set_review_state("flagged")
    assert c.session.editor.modified
    w.actions.save.trigger()
    assert not c.session.editor.modified
    editor = c.session.editor
    for i in (4, 60):
        name = c.session.volume.slice_names[i]
        png = cv2.imread(str(patient / "mask" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
        assert np.array_equal(png // 255, editor.slice_mask(i))
    # the scan's images are never written
    assert {p.name: p.read_bytes() for p in (patient / "image").iterdir()} == images_before
    # the dataset opens and shows the saved review state
    from core.store.dataset import open_dataset

    states = open_dataset(patient).review_states("ts_pulm")
    assert states[c.session.volume.slice_names[4]] == "flagged"


def test_scan_without_dataset_is_added_as_patient(qtbot, make_window, tmp_path):
    import cv2

    target = tmp_path / "new_dataset"
    target.mkdir()
    w = make_window()
    wait_idle(qtbot, w)
    w.prompts.choose_directory = lambda *a, **k: str(target)
    w.prompts.ask_text = lambda *a, **k: "sample_01"
    c = w.controller
    c.set_slice(50)
    c.clear_slice()
    assert w.files.save()
    patient = next(p for p in target.rglob("sample_01") if p.is_dir())
    assert (patient / "image").is_dir() and len(list((patient / "mask").glob("*.png"))) == c.session.n_slices
    png = cv2.imread(str(patient / "mask" / "1-051.png"), cv2.IMREAD_UNCHANGED)
    assert not png.any()
    # a second save goes to the same patient
    c.set_slice(49)
    c.clear_slice()
    assert w.files.save()
    assert not cv2.imread(str(patient / "mask" / "1-050.png"), cv2.IMREAD_UNCHANGED).any()


def test_export_nifti_and_pngs(qtbot, make_window, tmp_path):
    import cv2
    import nibabel as nib

    w = make_window(model=Path("/nonexistent/model.keras"))
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    s = w.controller.session
    w.controller.set_slice(55)
    w.controller.clear_slice()
    out = tmp_path / "export" / "heart_mask.nii.gz"
    out.parent.mkdir()
    assert w.files.export_nifti(out)
    img = nib.load(str(out))
    # on the scan's own grid (issue 13): the source's shape and affine, and it reads back as the edited mask
    from core.io import read_nifti_mask

    src = nib.load(str(s.volume.source_files[0]))
    assert img.shape == src.shape and np.array_equal(img.affine, src.affine)
    assert np.array_equal(read_nifti_mask(out, s.volume), s.editor.mask)
    folder = tmp_path / "pngs"
    assert w.files.export_pngs(folder)
    files = sorted(folder.glob("*.png"))
    assert len(files) == s.n_slices and files[0].name == "1-001.png"
    first = cv2.imread(str(folder / "1-060.png"), cv2.IMREAD_UNCHANGED)
    assert first.shape == s.volume.slice_shape and np.array_equal(first // 255, s.editor.slice_mask(59))


def test_cancel_inference_keeps_window_usable(qtbot, make_window, tiny_model):
    w = make_window(model=tiny_model)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    wait_idle(qtbot, w)
    c = w.controller
    outcomes = []
    w.predictionFinished.connect(outcomes.append)
    c.start_prediction()
    assert c.is_busy("predict") and w.job_bar.isVisible()
    w.job_bar.cancel_button.click()
    qtbot.waitUntil(lambda: not c.is_busy(), timeout=WAIT_MS)
    assert outcomes == ["cancelled"]
    assert not w.job_bar.isVisible()
    c.step_slice(+1)
    # and a new prediction still runs to the end
    c.start_prediction()
    wait_predicted(qtbot, w)
    assert outcomes[-1] == "returned"


def test_stale_results_are_dropped(qtbot, make_window, tiny_model, tmp_path):
    w = make_window(model=tiny_model)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    c = w.controller
    first_session = c.session
    # switch scans while the first prediction runs: nothing of it may land in the new session
    root = _kaggle_copy(tmp_path)
    w.files.open_path(root / "ts_pulm")
    qtbot.waitUntil(lambda: c.session is not first_session and c.session is not None, timeout=WAIT_MS)
    wait_predicted(qtbot, w)
    assert c.session.volume.kind == "kaggle_patient"
    assert c.session.ai_mask.shape == c.session.volume.voxels.shape


def test_bad_model_shows_error_and_window_stays_usable(qtbot, make_window, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip file")
    w = make_window(model=bad)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    wait_idle(qtbot, w)
    assert w.prompts.errors and "broken.keras" in w.prompts.errors[-1][1]
    assert w.prompts.open_error_boxes()
    w.controller.step_slice(+1)
    w.controller.clear_slice()
    assert w.controller.session.editor.can_undo


def test_unsaved_changes_question_on_switch(qtbot, make_window, tmp_path):
    w = make_window(model=Path("/nonexistent/model.keras"))
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    c = w.controller
    c.clear_slice()
    session = c.session
    asked = []
    w.prompts.save_discard_cancel = lambda q: asked.append(q) or "cancel"
    root = _kaggle_copy(tmp_path)
    assert not w.files.open_path(root / "ts_pulm")
    assert asked and c.session is session
    w.prompts.save_discard_cancel = lambda q: "discard"
    assert w.files.open_path(root / "ts_pulm")
    qtbot.waitUntil(lambda: c.session is not session and c.session is not None, timeout=WAIT_MS)


def test_dataset_patient_list(qtbot, make_window, tmp_path):
    root = _kaggle_copy(tmp_path)
    shutil.copytree(root / "ts_pulm", root / "second")
    w = make_window(root, model=Path("/nonexistent/model.keras"))
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    assert w.patients_dock.isVisible() or not w.isVisible()
    assert sorted(patient_ids(w.patient_list)) == ["second", "ts_pulm"]
    assert w.patient_list.item(0, 1).text() == "112"
    w.patient_list.patientChosen.emit("second")
    qtbot.waitUntil(lambda: w.controller.patient_id == "second" and not w.controller.is_busy(), timeout=WAIT_MS)
    assert w.controller.session.volume.name == "second"


def test_close_while_predicting_cancels_and_waits(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.controller.is_busy("predict"), timeout=WAIT_MS)
    runner = w.controller.runner
    w.close()
    assert not runner.jobs  # every thread stopped and was waited for


def test_full_precision_switch_predicts_again_in_float32_and_is_remembered(qtbot, make_window, settings_dir,
                                                                            monkeypatch):
    from core.inference import predictor as predictor_module
    from core.inference.engines import openvino as openvino_runtime

    monkeypatch.setattr(predictor_module, "amx_bf16_supported", lambda: True)
    w = make_window(model=resources.bundled_model_path())
    wait_predicted(qtbot, w)
    # bfloat16 by default only where the shipped IR's recorded check passed (it is written where the CPU has
    # bfloat16 units; on a CPU without them the record says "not checked" and auto stays float32)
    record = openvino_runtime.find_ir(resources.bundled_model_path()).record
    auto = "bfloat16" if record["bf16_check"].get("ok") else "float32"
    assert w.status_model.text() == f"Model: heartseg_unet.keras (OpenVINO {auto})"
    before = w.controller.session.ai_mask.copy()
    w.actions.full_precision.trigger()
    assert w.controller.precision == "float32"
    wait_predicted(qtbot, w)
    assert w.status_model.text() == "Model: heartseg_unet.keras (OpenVINO float32)"
    after = w.controller.session.ai_mask
    agree = 2 * (before & after).sum() / (before.sum() + after.sum())
    assert agree > 0.99
    w.save_settings()
    from heartseg_gui.state.settings import make_settings

    assert make_settings().full_precision is True
    again = make_window(model=Path("/nonexistent/model.keras"))
    assert again.actions.full_precision.isChecked() and again.controller.precision == "float32"


def test_shortcuts_dialog_and_settings(qtbot, make_window, settings_dir):
    w = make_window(model=Path("/nonexistent/model.keras"))
    dialog = w.show_shortcuts()
    qtbot.addWidget(dialog)
    texts = [dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())]
    assert any("Ctrl+Z" in t for t in texts) and any("Ctrl+Shift+Z" in t for t in texts)
    assert {"B", "E", "[", "]", "A", "X", "N", "P", "M", "O", "C"} <= set(t for t in texts)
    dialog.close()
    w.tool_panel.set_radius(9)
    w.save_settings()
    assert (settings_dir / "heartseg.ini").is_file()
    from heartseg_gui.state.settings import make_settings

    assert make_settings().brush_radius == 9
    assert make_settings().recent_files


def test_drop_a_folder_opens_it(qtbot, make_window, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDropEvent

    root = _kaggle_copy(tmp_path)
    w = make_window(model=Path("/nonexistent/model.keras"), sample=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root / "ts_pulm"))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    w.dropEvent(event)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=WAIT_MS)
    assert w.controller.session.volume.name == "ts_pulm"
    assert w.recent_menu.actions() and w.recent_menu.actions()[0].text().endswith("ts_pulm")


def test_undo_in_the_middle_of_a_drag_undoes_the_drag_and_the_next_move_is_harmless(qtbot, make_window):
    """Ctrl+Z while the mouse button is still down: the drag so far is the step undone, and the mouse moves that
    follow (until the release) paint nothing and raise nothing (they raised "stroke_to() called without
    begin_stroke()")."""
    w = make_window()
    wait_idle(qtbot, w)
    c = w.controller
    editor = c.session.editor
    before = editor.copy_mask()
    c.begin_stroke(10.0, 10.0, False, 3.0)
    c.continue_stroke(10.0, 30.0)
    assert not np.array_equal(editor.mask, before)
    c.undo()
    np.testing.assert_array_equal(editor.mask, before)
    c.continue_stroke(12.0, 40.0)   # the user is still dragging
    c.end_stroke()
    np.testing.assert_array_equal(editor.mask, before)
    c.redo()
    assert not np.array_equal(editor.mask, before)

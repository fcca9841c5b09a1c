"""Where to look first, in the real window offscreen: the review queue, Next most uncertain, the confidence
overlay, the area-per-slice plot, and the correction record written by Save and File ▸ Export Report…."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from core.review.uncertainty import review_order  # noqa: E402
from tests.gui.test_gui_window import drag, key, make_window, settings_dir, tiny_model, wait_predicted  # noqa: E402,F401
from tests.helpers import curve_data, review_text, row_slices  # noqa: E402

pytestmark = pytest.mark.gui


def _open_copy(qtbot, make_window, tmp_path, shared_data, pid: str):
    """The real window on a copy of kaggle_strips patient ``pid`` (its prediction finished)."""
    patient = tmp_path / "data" / "train" / pid
    shutil.copytree(shared_data / "kaggle_strips" / "train" / pid, patient)
    w = make_window(patient)
    wait_predicted(qtbot, w)
    return patient, w


def _settle(qtbot):
    qtbot.wait(400)  # the docks redraw at most every 150 ms (qthrottled)


def test_queue_lists_slices_most_uncertain_first_and_q_walks_it(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    _settle(qtbot)
    s, c = w.controller.session, w.controller
    assert np.all(np.isfinite(s.uncertainty)) and np.all((s.uncertainty >= 0) & (s.uncertainty <= 1))
    rows = row_slices(w.review_queue)
    assert sorted(rows) == list(range(s.n_slices))
    shown = [s.uncertainty[i] for i in rows]
    assert shown == sorted(shown, reverse=True)  # the dock opens sorted by uncertainty, highest first
    order = review_order(s.uncertainty, s.editor.review_states)
    key(qtbot, w, Qt.Key.Key_Q)
    assert c.current_slice == order[0]
    key(qtbot, w, Qt.Key.Key_Q)
    assert c.current_slice == order[1]
    c.set_slice(order[0])
    key(qtbot, w, Qt.Key.Key_A)  # accept: leaves the queue of slices not reviewed
    c.set_slice(order[-1])  # wander off: Q starts again from the top of what is left
    key(qtbot, w, Qt.Key.Key_Q)
    assert c.current_slice == order[1]
    # a click in the dock goes to that slice
    row = 3
    target = int(w.review_queue.table.item(row, 0).data(Qt.ItemDataRole.UserRole))
    w.review_queue.table.cellClicked.emit(row, 0)
    assert c.current_slice == target
    _settle(qtbot)
    states = {w.review_queue.table.item(r, 0).data(Qt.ItemDataRole.UserRole): w.review_queue.table.item(r, 3).text()
              for r in range(w.review_queue.table.rowCount())}
    assert states[order[0]] == "accepted"


def test_confidence_overlay_toggles_with_k(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    item = w.slice_view.confidence_item
    assert not item.isVisible()
    key(qtbot, w, Qt.Key.Key_K)
    assert item.isVisible() and w.actions.toggle_confidence.isChecked()
    s = w.controller.session
    assert item.image is not None and item.image.shape == s.volume.slice_shape and item.image.dtype == np.uint8
    np.testing.assert_array_equal(item.image, s.confidence_slice(w.controller.current_slice))
    w.controller.step_slice(+1)
    np.testing.assert_array_equal(item.image, s.confidence_slice(w.controller.current_slice))
    key(qtbot, w, Qt.Key.Key_K)
    assert not item.isVisible()


def test_area_plot_follows_painting_and_navigates(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    _settle(qtbot)
    s, c = w.controller.session, w.controller
    mm2 = s.pixel_area_mm2()
    ai, work = curve_data(w.area_plot)
    assert len(ai) == len(work) == s.n_slices
    np.testing.assert_allclose(ai, np.count_nonzero(s.ai_mask.reshape(s.n_slices, -1), axis=1) * mm2)
    c.set_slice(5)
    before = work[5]
    w.set_tool("brush")
    drag(qtbot, w.slice_view, [(40, 40), (40, 60), (50, 60)])
    _settle(qtbot)
    _, work = curve_data(w.area_plot)
    assert work[5] == s.editor.area_px(5) * mm2 > before  # live while painting
    w.area_plot.choose_x(10.2)  # a click near slice 10 (numbered from 1)
    assert c.current_slice == 9
    assert w.area_plot.current.value() == 10


@pytest.mark.shared
def test_save_keeps_the_correction_record_and_report_exports(qtbot, make_window, tmp_path, shared_data):
    patient, w = _open_copy(qtbot, make_window, tmp_path, shared_data, "100056")
    c, s = w.controller, w.controller.session
    c.set_slice(2)
    qtbot.wait(300)  # time on screen
    w.set_tool("brush")
    drag(qtbot, w.slice_view, [(200, 200), (200, 260)])
    c.set_slice(3)
    assert w.files.save()
    sidecar = json.loads((patient / ".heartseg" / "review.json").read_text())
    name = s.volume.slice_names[2]
    rec = sidecar["slices"][name]
    assert rec["state"] == "corrected" and rec["seconds"] >= 0.25
    assert rec["area_px"] == int(np.count_nonzero(s.editor.slice_mask(2)))
    assert rec["ai_area_px"] == int(np.count_nonzero(s.ai_mask[2]))
    # the report of the open scan; never into the scan's own folder
    assert w.review_panels.export_report(patient / "image") == []
    assert w.prompts.errors[-1][0] == "Export report" and "inside the scan's own folder" in w.prompts.errors[-1][1]
    assert not (patient / "image" / "record.csv").exists()
    out = tmp_path / "report"
    written = w.review_panels.export_report(out)
    assert {p.name for p in written} == {"record.csv", "area.png", "report.md"}
    with open(out / "record.csv") as fh:
        rows = {r["slice"]: r for r in csv.DictReader(fh)}
    assert rows[name]["state"] == "corrected" and int(rows[name]["saved_area_px"]) == rec["area_px"]


@pytest.mark.shared
def test_review_states_survive_a_second_sitting(qtbot, make_window, tmp_path, shared_data):
    patient, w = _open_copy(qtbot, make_window, tmp_path, shared_data, "100065")
    c = w.controller
    c.set_slice(0)
    c.set_review_state("accepted")
    c.set_slice(1)
    c.set_review_state("flagged")
    c.set_slice(2)
    w.set_tool("brush")
    drag(qtbot, w.slice_view, [(200, 200), (200, 240)])  # corrected by painting
    assert w.files.save()
    w.close()
    w2 = make_window(patient)  # a new sitting
    wait_predicted(qtbot, w2)
    states = w2.controller.session.editor.review_states
    assert states[:3] == ["accepted", "flagged", "corrected"]
    assert not w2.controller.session.editor.modified  # loading the record is not an unsaved change
    w2.controller.set_slice(3)
    w2.controller.set_review_state("accepted")
    assert w2.files.save()
    sidecar = json.loads((patient / ".heartseg" / "review.json").read_text())["slices"]
    names = w2.controller.session.volume.slice_names
    assert [sidecar[n]["state"] for n in names[:4]] == ["accepted", "flagged", "corrected", "accepted"]


@pytest.mark.shared
def test_patient_list_review_column_updates_live(qtbot, make_window, tmp_path, shared_data):
    root = tmp_path / "data" / "train"
    for pid in ("100065", "100072"):
        shutil.copytree(shared_data / "kaggle_strips" / "train" / pid, root / pid)
    w = make_window(tmp_path)
    qtbot.waitUntil(lambda: w.controller.dataset is not None, timeout=60_000)
    w.files.open_patient("100072")
    wait_predicted(qtbot, w)
    assert review_text(w.patient_list, "100072") == "not reviewed 13"
    w.controller.set_review_state("accepted")
    assert review_text(w.patient_list, "100072") == "not reviewed 12, accepted 1"
    w.controller.set_review_state("flagged")
    assert "flagged 1" in review_text(w.patient_list, "100072")
    assert review_text(w.patient_list, "100065").startswith("not reviewed")  # other rows untouched

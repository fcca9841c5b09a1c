"""The defects a radiologist hit (issue 15), each on the real window offscreen: the review record across two
processes, the stale pixel read-out, Shift+I over corrections, Esc and the running prediction, the patient list's
double-click, a failed open and the dataset, the "Use the new model?" question, the cardiac window, the empty-slice
Dice, Versions… for v0 and the recovery prompt's time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core import resources  # noqa: E402
from heartseg_gui import display  # noqa: E402
from tests.corpus import SAMPLE_PATIENT  # noqa: E402
from tests.gui.test_gui_window import make_window, settings_dir, tiny_model, wait_idle, wait_predicted  # noqa: E402,F401
from tests.helpers import WINDOW_CHILD_PRELUDE, image_to_widget  # noqa: E402

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]


def _dataset(where: Path, pids=("p1", "p2"), n: int = 8) -> Path:
    """A small Kaggle dataset ``where/data/train/<pid>`` of the bundled sample's slices 50.. (image + mask)."""
    names = sorted(p.name for p in (SAMPLE_PATIENT / "image").glob("*.png"))[50:50 + n]
    for pid in pids:
        for sub in ("image", "mask"):
            (where / "data" / "train" / pid / sub).mkdir(parents=True)
            for name in names:
                shutil.copy(SAMPLE_PATIENT / sub / name, where / "data" / "train" / pid / sub / name)
    return where


def _no_model_window(qtbot, path: Path):
    """The real window without a model (nothing predicts), "discard" on close."""
    from heartseg_gui.app import create_window

    w = create_window(None, None, path / "no-model.keras", sample_when_empty=False)
    qtbot.addWidget(w)
    w.controller.auto_predict = False
    w.prompts.save_discard_cancel = lambda question: "discard"
    w.files.open_path(path, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=60_000)
    return w


def _move(view, row: int, col: int) -> None:
    vp = view.viewport()
    pos = image_to_widget(view, row, col)
    ev = QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(vp.mapToGlobal(pos.toPoint())), Qt.MouseButton.NoButton,
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


# ------------------------------------------------------------------------------ the review record, two processes
SECOND_SITTING = WINDOW_CHILD_PRELUDE + r'''
print(",".join(c.session.editor.review_states[:3]), flush=True)   # what the second sitting sees
c.set_slice(3)
c.set_review_state("flagged")
c.set_slice(4)
c.set_review_state("accepted")
assert w.files.save()
w.files.has_unsaved = lambda: False
c.shutdown()
'''


def test_review_record_survives_a_second_process(qtbot, tmp_path, settings_dir):
    patient = _dataset(tmp_path / "ds", ("p1",)) / "data" / "train" / "p1"
    w = _no_model_window(qtbot, patient)
    c = w.controller
    for i, state in ((0, "accepted"), (1, "flagged")):
        c.set_slice(i)
        c.set_review_state(state)
    c.set_slice(2)
    c.clear_slice()                                          # corrected by an edit
    assert w.files.save()
    w.controller.shutdown()
    w.close()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HEARTSEG_SETTINGS_DIR": str(tmp_path / "settings2")}
    done = subprocess.run([sys.executable, "-c", SECOND_SITTING, str(patient)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "accepted,flagged,corrected"
    sidecar = json.loads((patient / ".heartseg" / "review.json").read_text())["slices"]
    names = sorted(p.stem for p in (patient / "image").glob("*.png"))
    got = [sidecar.get(n, sidecar.get(n + ".png", {})).get("state") for n in names[:5]]
    assert got == ["accepted", "flagged", "corrected", "flagged", "accepted"]
    w3 = _no_model_window(qtbot, patient)                    # and a third sitting sees all of it
    assert w3.controller.session.editor.review_states[:5] == got


# --------------------------------------------------------------------------------------- pixel read-out
def test_pixel_readout_follows_a_slice_change(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    c, s = w.controller, w.controller.session
    c.set_slice(40)
    w.slice_view.resize(600, 600)
    qtbot.wait(50)
    _move(w.slice_view, 100, 90)
    qtbot.waitUntil(lambda: "row 100, col 90" in w.status_pixel.text(), timeout=5000)
    v40, v41 = s.volume.voxels[40, 100, 90], s.volume.voxels[41, 100, 90]
    assert v40 != v41
    assert display.format_value(v40, "hu") in w.status_pixel.text()
    c.set_slice(41)                                          # no mouse move
    assert display.format_value(v41, "hu") in w.status_pixel.text()


# ----------------------------------------------------------------------------------------------- Shift+I
def test_accept_ai_all_asks_before_overwriting_corrections(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    c, s = w.controller, w.controller.session
    i = 7
    c.set_slice(i)
    c.begin_stroke(60.0, 60.0, False, 6.0)                   # a correction that differs from the AI mask
    c.continue_stroke(60.0, 80.0)
    c.end_stroke()
    assert not np.array_equal(s.editor.slice_mask(i), s.ai_mask[i])
    assert s.editor.review_state(i) == "corrected"
    corrected = s.editor.slice_mask(i).copy()
    asked = []
    w.prompts.keep_overwrite_cancel = lambda n: asked.append(n) or "cancel"
    qtbot.keyClick(w.slice_view, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert asked == [1] and np.array_equal(s.editor.slice_mask(i), corrected)   # cancelled: nothing changed
    w.prompts.keep_overwrite_cancel = lambda n: asked.append(n) or "keep"
    qtbot.keyClick(w.slice_view, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert len(asked) == 2 and np.array_equal(s.editor.slice_mask(i), corrected)
    assert s.editor.review_state(i) == "corrected"
    other = (i + 3) % s.n_slices
    assert np.array_equal(s.editor.slice_mask(other), s.ai_mask[other])   # the other slices got the AI mask
    w.prompts.keep_overwrite_cancel = lambda n: asked.append(n) or "overwrite"
    qtbot.keyClick(w.slice_view, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(s.editor.slice_mask(i), s.ai_mask[i])
    assert s.editor.review_state(i) == "not_reviewed"        # its correction is gone: not reviewed any more
    n_asked = len(asked)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert len(asked) == n_asked                             # nothing corrected left to lose: no question


# ---------------------------------------------------------------------------------------------- Esc
def test_escape_does_not_cancel_the_prediction(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    with qtbot.waitSignal(w.predictionFinished, timeout=90_000) as outcome:
        w.controller.start_prediction()
        assert w.controller.is_busy()
        qtbot.keyClick(w.slice_view, Qt.Key.Key_Escape)
    assert outcome.args == ["returned"]
    assert not w.actions.cancel_job.shortcuts()             # only the explicit Cancel (menu, job bar)


# ------------------------------------------------------------------------------------------- patient list
def test_double_click_on_a_patient_opens_it_once(qtbot, tmp_path, settings_dir):
    root = _dataset(tmp_path / "ds")
    w = _no_model_window(qtbot, root)
    table = w.patient_list
    chosen = []
    table.patientChosen.connect(chosen.append)
    asked = []
    w.prompts.save_discard_cancel = lambda question: asked.append(question) or "discard"
    w.controller.session.editor.set_review_state(0, "flagged")      # unsaved: opening another patient asks
    rect = table.visualItemRect(table.item(1, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert chosen == [] and table.currentRow() == 1                 # a single click selects
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert chosen == ["p2"] and len(asked) == 1                     # a double-click opens, once, one question
    qtbot.waitUntil(lambda: w.controller.patient_id == "p2" and not w.controller.is_busy(), timeout=60_000)
    table.setCurrentCell(0, 0)
    qtbot.keyClick(table, Qt.Key.Key_Return)
    assert chosen == ["p2", "p1"]


def test_failed_open_keeps_the_dataset(qtbot, tmp_path, settings_dir):
    root = _dataset(tmp_path / "ds")
    w = _no_model_window(qtbot, root)
    assert w.controller.dataset is not None and w.patients_dock.isVisible()
    bad = tmp_path / "not-a-scan"
    bad.mkdir()
    (bad / "notes.txt").write_text("no images here")
    w.files.open_path(bad, ask=False)
    qtbot.waitUntil(lambda: not w.controller.is_busy(), timeout=30_000)
    qtbot.waitUntil(lambda: bool(w.prompts.errors), timeout=10_000)
    assert w.controller.dataset is not None and w.patients_dock.isVisible()
    assert w.controller.patient_id == "p1"
    w.files.open_patient("p2")                                      # and it still opens patients
    qtbot.waitUntil(lambda: w.controller.patient_id == "p2" and not w.controller.is_busy(), timeout=60_000)
    assert w.controller.session.volume.source_files[0].parts[-3] == "p2"


# ----------------------------------------------------------------------------------- "Use the new model?"
def test_new_model_question_is_a_bar_that_does_not_block(qtbot, make_window, monkeypatch):
    from heartseg_gui.controllers import retrain_manager

    w = make_window(sample=False)
    m = w.retraining.manager
    monkeypatch.setattr(retrain_manager, "compare_text", lambda outcome: "validation pooled Dice 0.80 -> 0.82")
    activated = []
    monkeypatch.setattr(m, "activate", lambda version, registry=None: activated.append(version))
    outcome = SimpleNamespace(version=3, registry_dir=w.settings_dir if hasattr(w, "settings_dir") else Path("."))
    started = time.monotonic()
    assert m._ask_activate_dialog(outcome) is False                 # returns at once: no modal exec()
    assert time.monotonic() - started < 1.0
    assert not [b for b in QApplication.topLevelWidgets() if b.objectName() == "activateNewModelBox"]
    bar = m.activate_bar
    assert bar is not None and bar.isVisible() and "v3" in bar.use_button.text()
    assert bar.use_button.focusPolicy() == Qt.FocusPolicy.NoFocus   # never takes the keys meant for the slice
    qtbot.mouseClick(bar.use_button, Qt.MouseButton.LeftButton)
    assert activated == [3] and not bar.isVisible()


# -------------------------------------------------------------------------------------------- display
def test_cardiac_window_preset(qtbot, make_window):
    w = make_window()
    wait_idle(qtbot, w)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_5)
    assert tuple(w.slice_view.image_item.levels) == (-130.0, 470.0)
    assert "W 600 / L 170" in w.tool_panel.levels_label.text()


def test_empty_slice_with_empty_ai_mask_shows_no_dice(qtbot, make_window):
    w = make_window()
    wait_predicted(qtbot, w)
    c, s = w.controller, w.controller.session
    empty = [i for i in range(s.n_slices) if not s.ai_mask[i].any() and not s.editor.slice_mask(i).any()]
    assert empty
    c.set_slice(empty[0])
    w.viewer.update_measurements()
    assert w.measurements.dice_slice.text() == "—"
    full = [i for i in range(s.n_slices) if s.ai_mask[i].any() or s.editor.slice_mask(i).any()][0]
    c.set_slice(full)
    w.viewer.update_measurements()
    assert w.measurements.dice_slice.text() != "—"


# -------------------------------------------------------------------------------- Versions… and recovery
def test_versions_dialog_shows_v0_dice_and_the_bundled_model_date(qtbot, tmp_path):
    from core.versions.registry import ModelRegistry
    from heartseg_gui.dialogs.versions_dialog import VersionsDialog

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "v1.keras").write_bytes(b"not read here")
    (folder / "v1.json").write_text(json.dumps({
        "format": 1, "version": 1, "parent": 0, "created": "2026-03-04T05:06:07+00:00", "model_file": "v1.keras",
        "kind": "trained", "validation": {"pooled_dice": 0.8123}, "parent_validation": {"pooled_dice": 0.7901}}))
    registry = ModelRegistry(folder)
    dialog = VersionsDialog(registry, lambda v: None, lambda: None)
    qtbot.addWidget(dialog)
    cols = {dialog.table.horizontalHeaderItem(k).text(): k for k in range(dialog.table.columnCount())}
    v0 = {name: dialog.table.item(0, k).text() for name, k in cols.items()}
    v1 = {name: dialog.table.item(1, k).text() for name, k in cols.items()}
    assert v0["Val. pooled Dice"] == "0.7901" and v1["Val. pooled Dice"] == "0.8123"
    bundled = datetime.fromtimestamp(os.stat(resources.bundled_model_path()).st_mtime).strftime("%Y-%m-%d %H:%M")
    assert v0["Created"] == bundled
    utc = datetime.fromisoformat("2026-03-04T05:06:07+00:00")
    assert v1["Created"] == utc.astimezone().strftime("%Y-%m-%d %H:%M")


def test_recovery_prompt_shows_local_time(qtbot, tmp_path, monkeypatch, settings_dir):
    monkeypatch.setenv("TZ", "Asia/Kolkata")                 # +05:30, never UTC
    time.tzset()
    try:
        patient = _dataset(tmp_path / "ds", ("p1",)) / "data" / "train" / "p1"
        monkeypatch.setenv("HEARTSEG_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("HEARTSEG_JOURNAL_INTERVAL_S", "0.2")
        w = _no_model_window(qtbot, patient)
        w.controller.set_slice(2)
        w.controller.clear_slice()
        qtbot.waitUntil(lambda: w.safety.journal.writes > 0, timeout=10_000)
        w.files.has_unsaved = lambda: False                 # closed without the question: the journal stays
        w.close()
        journal = json.loads((patient / ".heartseg" / "journal.json").read_text())
        written = journal["written_at"]
        from heartseg_gui.app import create_window

        asked = []
        w2 = create_window(None, None, patient / "no-model.keras", sample_when_empty=False)
        qtbot.addWidget(w2)
        w2.controller.auto_predict = False
        w2.safety.ask_recover = lambda text: asked.append(text) or False
        w2.prompts.save_discard_cancel = lambda question: "discard"
        w2.files.open_path(patient, ask=False)
        qtbot.waitUntil(lambda: bool(asked), timeout=60_000)
        assert "UTC" not in asked[0] and "IST" in asked[0]
        local = datetime.fromisoformat(written).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        assert local in asked[0]
    finally:
        monkeypatch.undo()
        time.tzset()


# ------------------------------------------------------------------------------ a folder with two DICOM series
@pytest.mark.shared
def test_folder_with_two_series_offers_a_picker(qtbot, tmp_path, settings_dir, abdomen_dicom):
    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "two_series"
    folder.mkdir()
    files = sorted(p for p in abdomen_dicom.iterdir() if p.is_file())[:6]
    other = generate_uid()
    for k, p in enumerate(files):
        ds = pydicom.dcmread(p)
        if k % 2:
            ds.SeriesInstanceUID = other
            ds.SeriesNumber = 902
            ds.SeriesDescription = "second series"
        ds.save_as(folder / f"im{k:02d}.dcm")
    root = _dataset(tmp_path / "ds")
    w = _no_model_window(qtbot, root)
    offered = []
    w.prompts.choose_series = lambda where, labels: offered.append(labels) or None       # cancelled
    assert w.files.open_path(folder, ask=False)  # the open job reads the headers and asks (never the GUI thread)
    qtbot.waitUntil(lambda: bool(offered) and not w.controller.is_busy(), timeout=60_000)
    assert len(offered) == 1 and len(offered[0]) == 2 and any("second series" in label for label in offered[0])
    assert not w.prompts.errors
    assert w.controller.dataset is not None and w.controller.patient_id == "p1"          # nothing changed
    w.prompts.choose_series = lambda where, labels: [i for i, t in enumerate(labels) if "second series" in t][0]
    assert w.files.open_path(folder, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and w.controller.session.volume.kind == "dicom"
                    and not w.controller.is_busy(), timeout=60_000)
    vol = w.controller.session.volume
    assert vol.n_slices == 3 and vol.metadata.get("SeriesInstanceUID") == other
    assert not w.prompts.errors
    assert w.controller.dataset is None and not w.patients_dock.isVisible()               # a scan on its own now


# ------------------------------------------------------------------- a NIfTI dataset opened like any other folder
@pytest.mark.shared
def test_a_nifti_dataset_opened_or_dropped_opens_as_a_dataset(qtbot, tmp_path, settings_dir, chest_crop):
    """One rule for "this folder is a dataset" (core.store.listing.is_dataset_root) in the CLI and the window: an
    nnU-Net folder given to Open / a drop shows its cases as patients (it was refused: "no scan found")."""
    import shutil

    root = tmp_path / "Dataset001_Heart"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for case in ("c1", "c2"):
        shutil.copy(chest_crop / "ct.nii.gz", root / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(chest_crop / "heart.nii.gz", root / "labelsTr" / f"{case}.nii.gz")
    w = _no_model_window(qtbot, _dataset(tmp_path / "ds"))
    assert w.files.open_path(root, ask=False)
    qtbot.waitUntil(lambda: w.controller.patient_id == "c1" and not w.controller.is_busy(), timeout=60_000)
    assert w.controller.dataset.pids == ["c1", "c2"] and not w.prompts.errors
    assert w.controller.session.volume.kind == "nifti" and w.controller.session.has_dataset_mask

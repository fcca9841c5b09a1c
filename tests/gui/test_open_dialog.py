"""File ▸ Open Scan… is one dialog for files or folders (issue 15): the non-native QFileDialog takes a NIfTI file, a
DICOM or PNG slice (its series folder opens), a scan or dataset folder selected with Open, or the folder it shows
(Open this folder); a plain folder is gone into. Driven non-modally (``open()``), and on the real window with the
dialog's ``exec`` replaced by a user who picks in the shown dialog, so nothing waits on a modal loop."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QFileDialog, QListView

from core import resources
from heartseg_gui.dialogs import open_scan_dialog
from heartseg_gui.dialogs.open_scan_dialog import OpenScanDialog, is_scan_folder, scan_path_for
from tests.gui import test_gui_window
from tests.gui.test_gui_window import wait_idle
from tests.helpers import sample_kaggle_patient

pytestmark = pytest.mark.gui
# the window fixtures of the window tests
make_window, settings_dir, tiny_model = (test_gui_window.make_window, test_gui_window.settings_dir,
                                         test_gui_window.tiny_model)


@pytest.fixture
def scans(tmp_path) -> Path:
    """A folder holding a NIfTI file, a Kaggle patient, a DICOM series (real slices) and a plain folder."""
    root = tmp_path / "scans"
    root.mkdir()
    shutil.copy(resources.sample_scan_path(), root / "sample.nii.gz")
    shutil.copytree(sample_kaggle_patient(), root / "patient")
    (root / "plain" / "deeper").mkdir(parents=True)
    (root / "notes.txt").write_text("not a scan")
    return root


def names_shown(dialog) -> list[str]:
    view = dialog.findChild(QListView, "listView")
    model = view.model()
    return [model.index(r, 0, view.rootIndex()).data() for r in range(model.rowCount(view.rootIndex()))]


def names_shown_after(qtbot, dialog, name: str) -> list[str]:
    qtbot.waitUntil(lambda: name in names_shown(dialog), timeout=5000)
    return names_shown(dialog)


def select(qtbot, dialog, name: str) -> None:
    """Click-select ``name`` in the shown dialog's list (once the file-system model has listed it)."""
    qtbot.waitUntil(lambda: name in names_shown(dialog), timeout=5000)
    view = dialog.findChild(QListView, "listView")
    index = view.model().index(names_shown(dialog).index(name), 0, view.rootIndex())
    view.selectionModel().select(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                 | QItemSelectionModel.SelectionFlag.Rows)


def open_button(dialog):
    return dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Open)


def shown_dialog(qtbot, start: Path) -> OpenScanDialog:
    d = OpenScanDialog(None, str(start))
    qtbot.addWidget(d)
    d.open()                                   # non-modal: the test keeps the event loop
    return d


def test_one_dialog_takes_files_and_folders(qtbot, scans):
    d = shown_dialog(qtbot, scans)
    assert d.testOption(QFileDialog.Option.DontUseNativeDialog)
    assert d.fileMode() == QFileDialog.FileMode.ExistingFile
    assert {"sample.nii.gz", "patient", "plain"} <= set(names_shown_after(qtbot, d, "sample.nii.gz"))
    assert "notes.txt" not in names_shown(d)          # the Scans filter
    # a file and Open
    select(qtbot, d, "sample.nii.gz")
    open_button(d).click()
    assert d.result() == QDialog.DialogCode.Accepted and d.chosen == scans / "sample.nii.gz"
    # a scan folder (Kaggle patient) and Open: the folder itself, not a walk into it
    d = shown_dialog(qtbot, scans)
    select(qtbot, d, "patient")
    open_button(d).click()
    assert d.result() == QDialog.DialogCode.Accepted and d.chosen == scans / "patient"
    # a plain folder and Open: the dialog goes into it and stays open
    d = shown_dialog(qtbot, scans)
    select(qtbot, d, "plain")
    open_button(d).click()
    assert d.isVisible() and d.chosen is None and Path(d.directory().absolutePath()) == scans / "plain"
    # ... where "Open this folder" takes the folder shown
    d.setDirectory(str(scans / "patient" / "image"))
    d.folder_button.click()
    assert d.result() == QDialog.DialogCode.Accepted and d.chosen == scans / "patient" / "image"
    assert scan_path_for(d.chosen) == scans / "patient"
    # a double-click (activation) on a file takes it too
    d = shown_dialog(qtbot, scans)
    select(qtbot, d, "sample.nii.gz")
    view = d.findChild(QListView, "listView")
    view.activated.emit(view.selectionModel().selectedIndexes()[0])
    assert d.result() == QDialog.DialogCode.Accepted and d.chosen == scans / "sample.nii.gz"


@pytest.mark.shared
def test_what_a_pick_opens(scans, abdomen_dicom):
    first_png = min((scans / "patient" / "image").iterdir())
    assert scan_path_for(first_png) == scans / "patient"                  # a Kaggle slice: its patient
    dicom_file = min(abdomen_dicom.iterdir())                        # DICOM files without a suffix
    assert scan_path_for(dicom_file) == abdomen_dicom                      # one slice: its series folder
    assert scan_path_for(scans / "sample.nii.gz") == scans / "sample.nii.gz"
    assert scan_path_for(scans / "plain") == scans / "plain"
    assert scan_path_for(scans / "patient" / "image") == scans / "patient"         # Open this folder in image/
    assert is_scan_folder(scans / "patient") and is_scan_folder(abdomen_dicom)
    assert is_scan_folder(scans)                                           # holds a patient: a dataset
    assert not is_scan_folder(scans / "plain") and not is_scan_folder(scans / "missing")


def user_picks(qtbot, monkeypatch, pick) -> list:
    """Replace OpenScanDialog.exec by a user who, in the shown dialog, does ``pick(dialog)``; returns the folder
    each dialog started in (so a test sees what the window asked)."""
    shown = []

    def exec_(self):
        shown.append(Path(self.directory().absolutePath()))
        self.show()
        pick(self)
        QApplication.processEvents()
        self.hide()
        return self.result()

    monkeypatch.setattr(OpenScanDialog, "exec", exec_)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: pytest.fail("Open Scan asked for a folder in a second dialog"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: pytest.fail("Open Scan asked for a file in a second dialog"))
    return shown


@pytest.mark.shared
def test_file_open_scan_opens_a_file_a_slice_or_a_folder(qtbot, monkeypatch, make_window, scans, abdomen_dicom):
    w = make_window(sample=False)
    wait_idle(qtbot, w)
    dicom = scans / "dicom"
    shutil.copytree(abdomen_dicom, dicom)

    def pick_file(d):                                      # the NIfTI file
        select(qtbot, d, "sample.nii.gz")
        open_button(d).click()

    shown = user_picks(qtbot, monkeypatch, pick_file)
    w.settings.set_last_folder(scans / "sample.nii.gz")
    w.actions.open_scan.trigger()
    wait_idle(qtbot, w)
    assert shown == [scans]                               # one dialog, starting in the last folder
    assert w.controller.session.volume.kind == "nifti" and w.controller.session.volume.name.startswith("sample")

    def pick_dicom_slice(d):                               # one slice of the series, under All files
        d.setDirectory(str(dicom))
        d.selectNameFilter("All files (*)")
        select(qtbot, d, min(p.name for p in dicom.iterdir()))
        open_button(d).click()

    user_picks(qtbot, monkeypatch, pick_dicom_slice)
    w.actions.open_scan.trigger()
    wait_idle(qtbot, w)
    v = w.controller.session.volume
    assert v.kind == "dicom" and v.n_slices == 20 and {p.parent for p in v.source_files} == {dicom}

    def pick_patient_folder(d):                            # a Kaggle patient folder
        d.setDirectory(str(scans))
        select(qtbot, d, "patient")
        open_button(d).click()

    user_picks(qtbot, monkeypatch, pick_patient_folder)
    w.actions.open_scan.trigger()
    wait_idle(qtbot, w)
    s = w.controller.session
    assert s.volume.kind == "kaggle_patient" and s.has_dataset_mask and np.any(s.dataset_mask)

    def cancel(d):
        d.reject()

    user_picks(qtbot, monkeypatch, cancel)
    w.actions.open_scan.trigger()
    assert w.controller.session is s                      # cancelled: the scan stays
    assert not w.prompts.errors


def test_choose_scan_returns_the_path_to_open_or_none(qtbot, monkeypatch, scans):
    def exec_(self):
        self.setDirectory(str(scans / "patient" / "image"))
        self.folder_button.click()
        return self.result()

    monkeypatch.setattr(OpenScanDialog, "exec", exec_)
    assert open_scan_dialog.choose_scan(None, str(scans)) == str(scans / "patient")
    monkeypatch.setattr(OpenScanDialog, "exec", lambda self: (self.reject(), self.result())[1])
    assert open_scan_dialog.choose_scan(None, str(scans)) is None

"""File ▸ Open Scan…: one dialog that takes a scan file or a scan folder.

A scan is a file (NIfTI ``.nii`` / ``.nii.gz``) or a folder (Kaggle patient, DICOM series, PNG slices, or a dataset
of patients); the platform's native dialogs pick either files or folders, never both, so this is Qt's own
(non-native) :class:`~PySide6.QtWidgets.QFileDialog` in *existing file* mode with these changes:

* **Open** with a file selected (or a double-click on it) takes the file; with a folder selected it takes the folder
  when the folder is a scan or a dataset (:func:`is_scan_folder`), and goes into it otherwise (Qt's behaviour);
* **Open this folder** takes the folder the dialog shows (e.g. after going into a DICOM series folder).

One DICOM or PNG slice (any file that is not NIfTI) stands for its series: :func:`scan_path_for` turns it into the folder that holds it (the
Kaggle patient for a slice in a patient's ``image/`` folder), which is what :func:`core.io.open_scan` reads.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QPushButton, QWidget

from core.errors import HeartsegError
from core.io.common import list_files
from core.io.dicom import is_dicom_folder
from core.io.kaggle import is_kaggle_patient
from core.io.nifti import is_nifti_path
from core.store.dataset import is_dataset_root

SCAN_FILE_FILTERS = ["Scans (*.nii *.nii.gz *.dcm *.png)", "All files (*)"]


def is_scan_folder(folder: Path) -> bool:
    """Whether Open takes ``folder`` as it is (a Kaggle patient, a folder of PNG or DICOM slices, a dataset)
    rather than going into it. Unreadable folders are not (the dialog goes into them and shows why)."""
    try:
        if not folder.is_dir():
            return False
        return (is_kaggle_patient(folder) or bool(list_files(folder, (".png",))) or is_dicom_folder(folder)
                or is_dataset_root(folder))
    except (HeartsegError, OSError):
        return False


def scan_path_for(path: Path) -> Path:
    """What to open for ``path`` picked in the dialog: a NIfTI file or a folder as it is; any other file is one
    slice (DICOM files often have no suffix, PNG) -> the folder of its series; a Kaggle patient's ``image/``
    folder (or a slice in it) -> the patient, so its masks come too."""
    path = Path(path)
    if is_nifti_path(path) and not path.is_dir():
        return path
    folder = path if path.is_dir() else path.parent
    if folder.name == "image" and is_kaggle_patient(folder.parent):
        return folder.parent
    return folder


class OpenScanDialog(QFileDialog):
    """The non-native file dialog that takes a file or a folder; :attr:`chosen` is the pick once accepted."""

    def __init__(self, parent: QWidget | None = None, start: str = "", title: str = "Open scan"):
        super().__init__(parent, title, start)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setFileMode(QFileDialog.FileMode.ExistingFile)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        self.setNameFilters(SCAN_FILE_FILTERS)
        self.setObjectName("openScanDialog")
        self.chosen: Path | None = None
        self.folder_button: QPushButton | None = None
        box = self.findChild(QDialogButtonBox)
        if box is not None:   # Qt's own dialog has one; should it ever not, Open on a folder still takes it
            self.folder_button = box.addButton("Open this folder", QDialogButtonBox.ButtonRole.ActionRole)
            self.folder_button.setToolTip("Open the folder shown here (a DICOM series, a Kaggle patient, PNG "
                                          "slices or a dataset)")
            self.folder_button.clicked.connect(self.open_current_folder)

    def accept(self) -> None:
        """Open (or a double-click on a file, or Enter on a typed name)."""
        files = self.selectedFiles()
        if len(files) == 1:
            picked = Path(files[0])
            if picked.is_file() or is_scan_folder(picked):
                self._choose(picked)
                return
        super().accept()   # a plain folder: go into it; a name that does not exist: Qt says so

    def open_current_folder(self) -> None:
        self._choose(Path(self.directory().absolutePath()))

    def _choose(self, path: Path) -> None:
        self.chosen = path
        self.done(QDialog.DialogCode.Accepted)


def choose_scan(parent: QWidget | None, start: str = "") -> str | None:
    """Ask for a scan (file or folder) with :class:`OpenScanDialog`; the path to open (see :func:`scan_path_for`),
    or None when cancelled."""
    dialog = OpenScanDialog(parent, start)
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.chosen is None:
            return None
        return str(scan_path_for(dialog.chosen))
    finally:
        dialog.deleteLater()

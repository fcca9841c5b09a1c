"""Every question and message the window puts to the user, in one replaceable object.

Tests (and the ``--screenshot`` mode) swap in answers instead of modal dialogs. Error messages are shown
non-blocking (``QMessageBox.open``) so a failing job never stalls the event loop.
"""

from __future__ import annotations

import sys
from typing import Optional

from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox, QWidget

from heartseg_gui.dialogs import open_scan_dialog
from heartseg_gui.dialogs.label_picker import LabelPickerDialog

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
KEEP, OVERWRITE = "keep", "overwrite"


class Prompts:
    def __init__(self, parent: QWidget):
        self.parent = parent
        self.quiet = False          # screenshot mode: errors go to stderr, never a dialog
        self.errors: list[tuple[str, str]] = []   # every error shown (title, message), for tests and logs
        self._boxes: list[QMessageBox] = []

    def error(self, title: str, message: str) -> None:
        self.errors.append((title, message))
        if self.quiet:
            print(f"heartseg: {title}: {message}", file=sys.stderr)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self.parent)
        box.setObjectName("heartsegErrorBox")
        box.finished.connect(lambda _r, b=box: self._boxes.remove(b) if b in self._boxes else None)
        self._boxes.append(box)
        box.open()

    def open_error_boxes(self) -> list[QMessageBox]:
        return list(self._boxes)

    def save_discard_cancel(self, question: str) -> str:
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes", question,
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.parent)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return SAVE
        if answer == QMessageBox.StandardButton.Discard:
            return DISCARD
        return CANCEL

    def keep_overwrite_cancel(self, n_corrected: int) -> str:
        """Shift+I would overwrite ``n_corrected`` slices corrected by hand: KEEP them (the AI mask goes only on
        the other slices), OVERWRITE them too, or CANCEL."""
        box = QMessageBox(QMessageBox.Icon.Question, "Accept the AI mask on all slices",
                          f"{n_corrected} slice{'s' if n_corrected != 1 else ''} you corrected by hand differ from "
                          "the AI mask. Keep your corrections there, or overwrite them with the AI mask (they go "
                          "back to \"not reviewed\")?", QMessageBox.StandardButton.Cancel, self.parent)
        keep = box.addButton("Keep my corrections", QMessageBox.ButtonRole.AcceptRole)
        overwrite = box.addButton("Overwrite them", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(keep)
        box.exec()
        clicked = box.clickedButton()
        return KEEP if clicked is keep else OVERWRITE if clicked is overwrite else CANCEL

    def choose_series(self, folder: str, series: list[str]) -> Optional[int]:
        """Which of a folder's DICOM series to open (``series``: one line each); None when cancelled."""
        item, ok = QInputDialog.getItem(self.parent, "Choose a series",
                                        f"{folder} holds {len(series)} DICOM series. Open which one?",
                                        series, 0, False)
        return series.index(item) if ok and item in series else None

    def choose_label(self, file_name: str, counts: dict[int, int]) -> Optional[int]:
        """Which label of a label map (``counts``: label -> voxel count) is the heart; None when cancelled."""
        dialog = LabelPickerDialog(file_name, counts, self.parent)
        return dialog.chosen_label() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def choose_directory(self, title: str, start: str = "") -> Optional[str]:
        path = QFileDialog.getExistingDirectory(self.parent, title, start)
        return path or None

    def choose_scan(self, start: str = "") -> Optional[str]:
        """File ▸ Open Scan…: a scan file or folder from one dialog (None: cancelled); see
        :mod:`heartseg_gui.dialogs.open_scan_dialog`."""
        return open_scan_dialog.choose_scan(self.parent, start)

    def choose_open_file(self, title: str, start: str = "", filters: str = "") -> Optional[str]:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, start, filters)
        return path or None

    def choose_save_file(self, title: str, start: str = "", filters: str = "") -> Optional[str]:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, start, filters)
        return path or None

    def choose_export(self) -> Optional[str]:
        """'png' or 'nifti' (None: cancelled)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Export masks",
                          "Export the working masks as a folder of PNGs (0/255, original slice names) or as a "
                          "NIfTI file on the scan's grid?", QMessageBox.StandardButton.Cancel, self.parent)
        png = box.addButton("PNG folder…", QMessageBox.ButtonRole.AcceptRole)
        nii = box.addButton("NIfTI file…", QMessageBox.ButtonRole.AcceptRole)
        box.exec()
        clicked = box.clickedButton()
        return "png" if clicked is png else "nifti" if clicked is nii else None

    def ask_text(self, title: str, label: str, default: str = "") -> Optional[str]:
        text, ok = QInputDialog.getText(self.parent, title, label, text=default)
        return text.strip() if ok and text.strip() else None

    def info(self, title: str, message: str) -> None:
        if self.quiet:
            return
        QMessageBox.information(self.parent, title, message)

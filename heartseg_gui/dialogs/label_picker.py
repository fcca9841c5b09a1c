"""The label picker of File ▸ Attach mask…: a label map holds several labels; which one is the heart?

One row per label (its value and voxel count), in label order as a file's legend lists them; the first row is
selected, a double click or OK picks the selected one, Cancel picks none.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget


def label_row(label: int, voxels: int) -> str:
    """``"label 2 — 12,345 voxels"``."""
    return f"label {label} — {voxels:,} voxel{'s' if voxels != 1 else ''}"


class LabelPickerDialog(QDialog):
    """``counts``: label value -> voxel count (non-zero labels only). :meth:`chosen_label` after ``exec``."""

    def __init__(self, file_name: str, counts: dict[int, int], parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("labelPickerDialog")
        self.setWindowTitle("Choose the heart label")
        self._labels = sorted(int(k) for k in counts)
        layout = QVBoxLayout(self)
        text = QLabel(f"{file_name} is a label map with {len(self._labels)} labels. Which one is the heart? "
                      "It becomes the working mask (one undo step).")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.list = QListWidget()
        for label in self._labels:
            item = QListWidgetItem(label_row(label, int(counts[label])))
            item.setData(Qt.ItemDataRole.UserRole, label)
            self.list.addItem(item)
        if self._labels:
            self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        layout.addWidget(self.list)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def rows(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def chosen_label(self) -> Optional[int]:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

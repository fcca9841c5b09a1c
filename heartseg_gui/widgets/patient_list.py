"""Dataset patient list: one row per patient (id, slices, has masks, review summary).

A single click selects a row; a double-click or Enter opens that patient, exactly once (Qt's ``activated`` also
fires on a double-click, so only ``cellDoubleClicked`` and the Enter key are used).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("Patient", "Slices", "Masks", "Review")


def _summary_text(summary) -> str:
    """A short text for a patient's review summary (dict of state -> count, a string, or None)."""
    if summary is None:
        return "not reviewed"
    if isinstance(summary, str):
        return summary
    if isinstance(summary, dict):
        parts = [f"{k.replace('_', ' ')} {v}" for k, v in summary.items() if v]
        return ", ".join(parts) or "not reviewed"
    return str(summary)


def _field(patient, *names, default=None):
    for name in names:
        if isinstance(patient, dict) and name in patient:
            return patient[name]
        if hasattr(patient, name):
            return getattr(patient, name)
    return default


class PatientList(QTableWidget):
    patientChosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.cellDoubleClicked.connect(self._activated)

    def set_patients(self, patients) -> None:
        self.setRowCount(0)
        for p in patients:
            row = self.rowCount()
            self.insertRow(row)
            pid = str(_field(p, "pid", "patient_id", "id", default="?"))
            values = (pid, str(_field(p, "n_slices", "slices", default="")),
                      "yes" if _field(p, "has_masks", default=False) else "no",
                      _summary_text(_field(p, "review", "review_summary", default=None)))
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, pid)
                self.setItem(row, col, item)

    def set_review(self, pid: str, summary) -> None:
        """Update one patient's Review cell (live, after a review action or a save)."""
        for r in range(self.rowCount()):
            if self.item(r, 0).data(Qt.ItemDataRole.UserRole) == pid:
                self.setItem(r, 3, QTableWidgetItem(_summary_text(summary)))
                return

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self._activated(self.currentRow(), 0)
            event.accept()
            return
        super().keyPressEvent(event)

    def _activated(self, row: int, _col: int) -> None:
        item = self.item(row, 0)
        if item is not None:
            self.patientChosen.emit(item.data(Qt.ItemDataRole.UserRole))

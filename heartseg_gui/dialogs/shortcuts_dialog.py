"""Help ▸ Shortcuts: every command with its keys, generated from the window's actions, plus mouse gestures."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

MOUSE_ROWS = [
    ("Mouse", "Paint (brush tool) / erase (eraser tool)", "Left drag"),
    ("Mouse", "Erase while the brush is selected", "Shift + left drag"),
    ("Mouse", "Pan", "Middle drag, or left drag with the Pan tool"),
    ("Mouse", "Window (width) / level", "Right drag: left-right / up-down"),
    ("Mouse", "Next / previous slice", "Wheel"),
    ("Mouse", "Zoom", "Ctrl + wheel"),
]


class ShortcutsDialog(QDialog):
    def __init__(self, rows, parent=None):
        super().__init__(parent)
        self.setWindowTitle("heartseg shortcuts")
        self.resize(560, 640)
        all_rows = list(rows) + MOUSE_ROWS
        table = QTableWidget(len(all_rows), 3, self)
        table.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for r, row in enumerate(all_rows):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)

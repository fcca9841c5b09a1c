"""The review queue dock: every slice with the AI's uncertainty, its QC flags and its review state, sortable;
a click goes to the slice. Most uncertain first by default (Review ▸ Next most uncertain walks the same order)."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.review.qc import FLAGS, describe

COLUMNS = ("Slice", "Uncertainty", "Flags", "Review")


class _NumberItem(QTableWidgetItem):
    """Sorts by its number (NaN last), shows text."""

    def __init__(self, text: str, value: float):
        super().__init__(text)
        self.value = -1.0 if value is None or math.isnan(value) else float(value)

    def __lt__(self, other):
        if isinstance(other, _NumberItem):
            return self.value < other.value
        return super().__lt__(other)


class ReviewQueue(QWidget):
    sliceChosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary = QLabel("No prediction yet")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(1, Qt.SortOrder.DescendingOrder)  # most uncertain first
        self.table.cellClicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def _clicked(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.sliceChosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def clear(self) -> None:
        self.table.setRowCount(0)
        self.summary.setText("No prediction yet")

    def set_rows(self, names, scores, flags, states, done, scan_flags=()) -> None:
        """Refill: one row per predicted slice (``done``), keeping the user's sort column."""
        header = self.table.horizontalHeader()
        col, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        if col < 0 or col >= len(COLUMNS):
            col, order = 1, Qt.SortOrder.DescendingOrder
        self.table.setSortingEnabled(False)
        rows = [i for i in range(len(names)) if done[i]]
        self.table.setRowCount(len(rows))
        for r, i in enumerate(rows):
            first = _NumberItem(f"{i + 1}  ({names[i]})", i)
            first.setData(Qt.ItemDataRole.UserRole, i)
            score = float(scores[i])
            unc = _NumberItem("—" if math.isnan(score) else f"{score:.2f}", score)
            fl = QTableWidgetItem(", ".join(flags[i]))
            if flags[i]:
                fl.setToolTip(describe(flags[i]))
            state = QTableWidgetItem(states[i].replace("_", " "))
            for c, item in enumerate((first, unc, fl, state)):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.sortItems(col, order)
        flagged = sum(1 for i in rows if flags[i])
        open_ = sum(1 for i in rows if states[i] == "not_reviewed")
        text = f"{len(rows)} slices predicted, {open_} not reviewed, {flagged} flagged by QC"
        if scan_flags:
            text += " — scan: " + "; ".join(FLAGS.get(f, f) for f in scan_flags)
        self.summary.setText(text)

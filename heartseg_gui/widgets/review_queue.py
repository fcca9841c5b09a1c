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
        self._cells: dict[int, tuple] = {}      # slice -> what its row shows (see _row_cells)
        self._items: dict[int, tuple] = {}      # slice -> its row's four items
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
        self._cells, self._items = {}, {}
        self.summary.setText("No prediction yet")

    def set_rows(self, names, scores, flags, states, done, scan_flags=()) -> None:
        """Refill: one row per predicted slice (``done``), keeping the user's sort column.

        When the same slices are listed as last time (a stroke ended, a slice was accepted) only the cells whose
        text changed are rewritten, and the table is re-sorted only if one did: a full refill of a 512-slice scan
        took about 45 ms, a pause the user felt as a stall of the next brush stroke."""
        rows = [i for i in range(len(names)) if done[i]]
        cells = {i: self._row_cells(i, names, scores, flags, states) for i in rows}
        if set(cells) == set(self._cells) and all(cells[i][0] == self._cells[i][0] for i in rows):
            self._update_cells(cells)
        else:
            self._refill(rows, cells)
        flagged = sum(1 for i in rows if flags[i])
        open_ = sum(1 for i in rows if states[i] == "not_reviewed")
        text = f"{len(rows)} slices predicted, {open_} not reviewed, {flagged} flagged by QC"
        if scan_flags:
            text += " — scan: " + "; ".join(FLAGS.get(f, f) for f in scan_flags)
        self.summary.setText(text)

    @staticmethod
    def _row_cells(i: int, names, scores, flags, states) -> tuple:
        """What row ``i`` shows: ((text, sort value) of the slice, (text, value or None) of the score, flags,
        state)."""
        score = float(scores[i])
        value = None if math.isnan(score) else score
        return ((f"{i + 1}  ({names[i]})", i), ("—" if value is None else f"{score:.2f}", value),
                tuple(flags[i]), states[i].replace("_", " "))

    def _sort_key(self) -> tuple:
        header = self.table.horizontalHeader()
        col, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        if col < 0 or col >= len(COLUMNS):
            col, order = 1, Qt.SortOrder.DescendingOrder
        return col, order

    def _refill(self, rows: list, cells: dict) -> None:
        col, order = self._sort_key()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        self._cells, self._items = {}, {}
        for r, i in enumerate(rows):
            (first_text, _), (score_text, score), flag_names, state_text = cells[i]
            first = _NumberItem(first_text, i)
            first.setData(Qt.ItemDataRole.UserRole, i)
            unc = _NumberItem(score_text, score)
            fl = QTableWidgetItem(", ".join(flag_names))
            if flag_names:
                fl.setToolTip(describe(list(flag_names)))
            state = QTableWidgetItem(state_text)
            for c, item in enumerate((first, unc, fl, state)):
                self.table.setItem(r, c, item)
            self._items[i] = (first, unc, fl, state)
            self._cells[i] = cells[i]
        self.table.setSortingEnabled(True)
        self.table.sortItems(col, order)

    def _update_cells(self, cells: dict) -> None:
        changed = [i for i, v in cells.items() if v != self._cells[i]]
        if not changed:
            return
        col, order = self._sort_key()
        self.table.setSortingEnabled(False)
        for i in changed:
            _first, unc, fl, state = self._items[i]
            (_t, _v), (score_text, score), flag_names, state_text = cells[i]
            unc.setText(score_text)
            unc.value = -1.0 if score is None else score
            fl.setText(", ".join(flag_names))
            fl.setToolTip(describe(list(flag_names)) if flag_names else "")
            state.setText(state_text)
            self._cells[i] = cells[i]
        self.table.setSortingEnabled(True)
        self.table.sortItems(col, order)


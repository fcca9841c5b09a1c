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
    """Sorts by its number (NaN last), equal numbers in slice order when sorted descending (the default order of
    the uncertainty column, as ``review_order``); shows text. Keys are plain tuples: a sort of 512 rows makes
    thousands of these comparisons."""

    def __init__(self, text: str, value: float, tie: int = 0):
        super().__init__(text)
        self.tie = tie
        self.set_value(value)

    def set_value(self, value) -> None:
        self.value = -1.0 if value is None or math.isnan(value) else float(value)
        self.key = (self.value, -self.tie)

    def __lt__(self, other):
        if isinstance(other, _NumberItem):
            return self.key < other.key
        return super().__lt__(other)


class _TextItem(QTableWidgetItem):
    """Sorts by its text, equal texts in slice order (so a table updated in place sorts as a fresh one)."""

    def __init__(self, text: str, tie: int):
        super().__init__(text)
        self.tie = tie
        self.key = (text, tie)

    def set_text(self, text: str) -> None:
        self.setText(text)
        self.key = (text, self.tie)

    def __lt__(self, other):
        if isinstance(other, _TextItem):
            return self.key < other.key
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

        Rows of the same scan are updated in place: slices no longer listed are removed, new ones (a prediction
        batch) appended, and only the cells whose text changed rewritten; the table is re-sorted once if anything
        changed. A full refill of a 512-slice scan took about 45 ms, after every prediction batch and every
        stroke: a stall the user felt in the next brush stroke."""
        rows = [i for i in range(len(names)) if done[i]]
        cells = {i: self._row_cells(i, names, scores, flags, states) for i in rows}
        kept = [i for i in rows if i in self._cells]
        if not kept or any(cells[i][0] != self._cells[i][0] for i in kept):
            self._refill(rows, cells)   # another scan (or nothing in common): build the table anew
        else:
            self._update_cells(cells)
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

    def _sort(self, col: int, order) -> None:
        """Sort once by ``col`` (turning sorting back on sorts by the indicator; sortItems after it sorted twice)."""
        self.table.horizontalHeader().setSortIndicator(col, order)
        self.table.setSortingEnabled(True)

    def _refill(self, rows: list, cells: dict) -> None:
        col, order = self._sort_key()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        self._cells, self._items = {}, {}
        for r, i in enumerate(rows):
            self._set_row(r, i, cells[i])
        self._sort(col, order)

    def _set_row(self, r: int, i: int, cell: tuple) -> None:
        """Fill table row ``r`` with slice ``i``'s new items (sorting must be off)."""
        (first_text, _), (score_text, score), flag_names, state_text = cell
        first = _NumberItem(first_text, i, i)
        first.setData(Qt.ItemDataRole.UserRole, i)
        unc = _NumberItem(score_text, score, i)
        fl = _TextItem(", ".join(flag_names), i)
        if flag_names:
            fl.setToolTip(describe(list(flag_names)))
        state = _TextItem(state_text, i)
        for c, item in enumerate((first, unc, fl, state)):
            self.table.setItem(r, c, item)
        self._items[i] = (first, unc, fl, state)
        self._cells[i] = cell

    def _update_cells(self, cells: dict) -> None:
        """Remove the rows of slices no longer listed, add rows for new ones (a prediction batch arrived) and
        rewrite the cells that changed; re-sort once if anything did."""
        gone = [i for i in self._cells if i not in cells]
        new = [i for i in cells if i not in self._cells]
        changed = [i for i, v in cells.items() if i in self._cells and v != self._cells[i]]
        if not (gone or new or changed):
            return
        col, order = self._sort_key()
        self.table.setSortingEnabled(False)
        for r in sorted((self._items[i][0].row() for i in gone), reverse=True):
            self.table.removeRow(r)
        for i in gone:
            del self._cells[i], self._items[i]
        start = self.table.rowCount()
        self.table.setRowCount(start + len(new))
        for r, i in enumerate(new, start):
            self._set_row(r, i, cells[i])
        for i in changed:
            _first, unc, fl, state = self._items[i]
            (_t, _v), (score_text, score), flag_names, state_text = cells[i]
            unc.setText(score_text)
            unc.set_value(score)
            fl.set_text(", ".join(flag_names))
            fl.setToolTip(describe(list(flag_names)) if flag_names else "")
            state.set_text(state_text)
            self._cells[i] = cells[i]
        self._sort(col, order)


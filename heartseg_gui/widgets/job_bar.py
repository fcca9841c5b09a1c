"""Status-bar job indicator: message, progress bar (done / total) and a Cancel button.

Progress is shown at most every :data:`MIN_INTERVAL_S` (the last report always shows, a moment later at most):
a fast job reports dozens of batches a second, and each label change re-lays out the status bar on the GUI thread
while the user paints.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

MIN_INTERVAL_S = 0.15


class JobBar(QWidget):
    cancelRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._shown_at = 0.0
        self._pending = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._show_pending)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setFormat("%v / %m")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.setVisible(False)

    def start(self, message: str) -> None:
        self._pending = None
        self._timer.stop()
        self._shown_at = 0.0
        self.label.setText(message)
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Show ``done`` of ``total``; reports closer than :data:`MIN_INTERVAL_S` apart are coalesced."""
        wait = self._shown_at + MIN_INTERVAL_S - time.monotonic()
        if wait > 0:
            self._pending = (done, total, message)
            if not self._timer.isActive():
                self._timer.start(max(1, int(wait * 1000)))
            return
        self._pending = None
        self._timer.stop()
        self._shown_at = time.monotonic()
        self._apply(done, total, message)

    def _show_pending(self) -> None:
        if self._pending is not None and self.isVisible():
            self.progress(*self._pending)

    def _apply(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        if message:
            self.label.setText(message)

    def finish(self) -> None:
        self._pending = None
        self._timer.stop()
        self.setVisible(False)

"""Status-bar job indicator: message, progress bar (done / total) and a Cancel button.

Progress is shown at most every :data:`MIN_INTERVAL_S` (superqt's ``qthrottled``: the first report at once, the
last one a moment later at most): a fast job reports dozens of batches a second, and each label change re-lays
out the status bar on the GUI thread while the user paints.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget
from superqt.utils import qthrottled

MIN_INTERVAL_S = 0.15


class JobBar(QWidget):
    cancelRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._show = qthrottled(self._apply, timeout=int(MIN_INTERVAL_S * 1000), leading=True)
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

    def _drop_pending(self) -> None:
        """Forget a report not shown yet, and let the next one show at once."""
        self._show.cancel()
        self._show.flush(restart_timer=False)

    def start(self, message: str) -> None:
        self._drop_pending()
        self.label.setText(message)
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Show ``done`` of ``total``; reports closer than :data:`MIN_INTERVAL_S` apart are coalesced."""
        self._show(done, total, message)

    def _apply(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        if message:
            self.label.setText(message)

    def finish(self) -> None:
        self._drop_pending()
        self.setVisible(False)
